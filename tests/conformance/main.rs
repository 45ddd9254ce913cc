//! Conformance: one list of scenarios over real loopback sockets, run against every runtime
//! whose feature is on. A difference between runtimes fails a test.
//!
//! Set SWITCHBOARD_TEST_LOG=1 to see the servers' log lines.

mod client;
mod history;
mod irc_client;
mod mixed;
mod runtimes;
mod scenarios;

/// Stamps out one `#[test]` per scenario for each runtime; scenarios are listed under the
/// module that holds them.
macro_rules! conformance {
    ($($module:ident: [$($scenario:ident),* $(,)?]),* $(,)?) => {
        #[cfg(feature = "smol")]
        mod smol {
            $($(#[test]
            fn $scenario() {
                crate::$module::$scenario(crate::runtimes::smol)
            })*)*
        }
        #[cfg(feature = "async-std")]
        mod async_std {
            $($(#[test]
            fn $scenario() {
                crate::$module::$scenario(crate::runtimes::async_std)
            })*)*
        }
        #[cfg(feature = "std")]
        mod std {
            $($(#[test]
            fn $scenario() {
                crate::$module::$scenario(crate::runtimes::std)
            })*)*
        }
    };
}

conformance!(
    scenarios: [
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
    ],
    // Native and IRC clients together.
    mixed: [
        irc_join_and_part_seen_by_native,
        irc_messages_both_ways,
        nick_collisions_across_protocols,
        topic_across_protocols,
        kick_across_protocols,
        away_across_protocols,
        direct_messages_across_protocols,
        irc_drop_without_quit,
        irc_overlong_line,
        irc_invalid_utf8,
        second_listener_same_rooms,
    ],
);
