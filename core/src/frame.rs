//! Incremental framing: a `u32` big-endian body length, then the body (type code and payload).

use bytes::{Buf, BytesMut};

use crate::packet::LENGTH_PREFIX;
use crate::DecodeError;

/// A buffer this large or larger is dropped once empty, so an idle connection holds no more
/// than a small buffer after one large frame.
const SHRINK_ABOVE: usize = 4096;

/// One whole frame, borrowed from the decoder or from the input it was fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The packet's type code.
    pub type_code: u8,
    /// The bytes after the type code.
    pub payload: &'a [u8],
}

/// Splits a byte stream that arrives in chunks of any size into frames.
///
/// It keeps at most one partial frame, and refuses a declared length above its maximum
/// before buffering any of that frame's body.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max_len: u32,
    /// The buffer holds a frame already handed out; clear it before reading on.
    handed_out: bool,
}

impl FrameDecoder {
    /// A decoder that accepts frame bodies of up to `max_len` bytes.
    pub fn new(max_len: u32) -> Self {
        FrameDecoder {
            buf: BytesMut::new(),
            max_len,
            handed_out: false,
        }
    }

    /// Bytes of a partial frame held between calls.
    pub fn buffered(&self) -> usize {
        if self.handed_out {
            0
        } else {
            self.buf.len()
        }
    }

    /// Memory held by the buffer, in bytes.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Takes bytes from the front of `input` and returns the next whole frame, if any.
    ///
    /// Call it again until it returns `Ok(None)`, which means `input` is used up and any
    /// rest is buffered. After an error the stream is unusable: the peer must be dropped.
    pub fn decode<'s, 'i: 's>(
        &'s mut self,
        input: &mut &'i [u8],
    ) -> Result<Option<Frame<'s>>, DecodeError> {
        if self.handed_out {
            self.handed_out = false;
            self.clear();
        }
        if self.buf.is_empty() {
            // Fast path: a whole frame inside the input is handed out without copying.
            if input.len() < LENGTH_PREFIX {
                self.buf.extend_from_slice(input);
                *input = &[];
                return Ok(None);
            }
            let total = self.check_len(&input[..LENGTH_PREFIX])?;
            if input.len() >= total {
                let (frame, rest) = input.split_at(total);
                *input = rest;
                return Ok(Some(Frame {
                    type_code: frame[LENGTH_PREFIX],
                    payload: &frame[LENGTH_PREFIX + 1..],
                }));
            }
            // The input holds less than one checked frame, so this stays within the limit.
            self.buf.extend_from_slice(input);
            *input = &[];
            return Ok(None);
        }
        if self.buf.len() < LENGTH_PREFIX {
            let take = (LENGTH_PREFIX - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            input.advance(take);
            if self.buf.len() < LENGTH_PREFIX {
                return Ok(None);
            }
        }
        let total = self.check_len(&self.buf[..LENGTH_PREFIX])?;
        let take = (total - self.buf.len()).min(input.len());
        self.buf.extend_from_slice(&input[..take]);
        input.advance(take);
        if self.buf.len() < total {
            return Ok(None);
        }
        self.handed_out = true;
        Ok(Some(Frame {
            type_code: self.buf[LENGTH_PREFIX],
            payload: &self.buf[LENGTH_PREFIX + 1..],
        }))
    }

    /// Reads a length prefix and returns the whole frame size, or why it is refused.
    fn check_len(&self, prefix: &[u8]) -> Result<usize, DecodeError> {
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        if len == 0 {
            return Err(DecodeError::EmptyFrame);
        }
        if len > self.max_len {
            return Err(DecodeError::FrameTooLarge {
                len,
                max: self.max_len,
            });
        }
        Ok(LENGTH_PREFIX + len as usize)
    }

    fn clear(&mut self) {
        if self.buf.capacity() >= SHRINK_ABOVE {
            self.buf = BytesMut::new();
        } else {
            self.buf.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(code: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
        v.push(code);
        v.extend_from_slice(payload);
        v
    }

    fn drain(dec: &mut FrameDecoder, mut input: &[u8]) -> Result<Vec<(u8, Vec<u8>)>, DecodeError> {
        let mut out = Vec::new();
        while let Some(f) = dec.decode(&mut input)? {
            out.push((f.type_code, f.payload.to_vec()));
        }
        assert!(input.is_empty());
        Ok(out)
    }

    #[test]
    fn whole_frames_in_one_chunk() {
        let mut dec = FrameDecoder::new(100);
        let mut bytes = frame(1, b"abc");
        bytes.extend(frame(2, b""));
        let got = drain(&mut dec, &bytes).unwrap();
        assert_eq!(got, vec![(1, b"abc".to_vec()), (2, vec![])]);
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn one_byte_at_a_time() {
        let mut dec = FrameDecoder::new(100);
        let bytes = frame(7, b"hello");
        let mut got = Vec::new();
        for b in &bytes {
            got.extend(drain(&mut dec, std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(got, vec![(7, b"hello".to_vec())]);
    }

    #[test]
    fn oversized_length_rejected_before_body() {
        let mut dec = FrameDecoder::new(10);
        let err = drain(&mut dec, &11u32.to_be_bytes()).unwrap_err();
        assert_eq!(err, DecodeError::FrameTooLarge { len: 11, max: 10 });
        // The same when the prefix arrives split.
        let mut dec = FrameDecoder::new(10);
        assert!(drain(&mut dec, &[0, 0]).unwrap().is_empty());
        assert!(drain(&mut dec, &[0xff, 0xff]).is_err());
        assert!(dec.buffered() <= 4);
    }

    #[test]
    fn empty_frame_rejected() {
        let mut dec = FrameDecoder::new(10);
        assert_eq!(
            drain(&mut dec, &[0, 0, 0, 0]).unwrap_err(),
            DecodeError::EmptyFrame
        );
    }

    #[test]
    fn keeps_at_most_one_partial_frame() {
        let mut dec = FrameDecoder::new(1000);
        let mut bytes = frame(1, &[9; 50]);
        bytes.extend(&frame(2, &[8; 500])[..100]);
        let got = drain(&mut dec, &bytes).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(dec.buffered(), 100);
    }

    #[test]
    fn buffer_shrinks_after_large_frame() {
        let mut dec = FrameDecoder::new(100_000);
        let bytes = frame(1, &[0; 50_000]);
        drain(&mut dec, &bytes[..10]).unwrap();
        assert_eq!(drain(&mut dec, &bytes[10..]).unwrap().len(), 1);
        drain(&mut dec, &[]).unwrap();
        assert!(dec.capacity() < SHRINK_ABOVE);
    }
}
