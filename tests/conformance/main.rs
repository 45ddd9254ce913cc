//! Conformance: one list of scenarios over real loopback sockets, run against every runtime
//! whose feature is on. A difference between runtimes fails a test.
//!
//! Set SWITCHBOARD_TEST_LOG=1 to see the servers' log lines.

mod client;
mod runtimes;
mod scenarios;

/// Stamps out one `#[test]` per scenario for each runtime.
macro_rules! conformance {
    ($($scenario:ident),* $(,)?) => {
        #[cfg(feature = "smol")]
        mod smol {
            $(#[test]
            fn $scenario() {
                crate::scenarios::$scenario(crate::runtimes::smol)
            })*
        }
        #[cfg(feature = "async-std")]
        mod async_std {
            $(#[test]
            fn $scenario() {
                crate::scenarios::$scenario(crate::runtimes::async_std)
            })*
        }
        #[cfg(feature = "std")]
        mod std {
            $(#[test]
            fn $scenario() {
                crate::scenarios::$scenario(crate::runtimes::std)
            })*
        }
    };
}

conformance!(
    hello_and_welcome,
    taken_nick,
    nick_change_seen_by_shared_rooms,
    join_and_leave_notices,
    room_message_reaches_members_only,
    order_kept_per_sender,
    direct_messages,
    room_and_member_lists,
    dropped_socket_frees_the_nick,
    malformed_frame,
    oversized_length,
    invalid_utf8,
    slow_consumer_is_closed,
    keepalive_closes_silent_client,
    flood_is_closed,
    thousand_clients,
    shutdown_says_bye,
);
