//! Conformance: one list of scenarios over real loopback sockets, run against every runtime
//! whose feature is on. A difference between runtimes fails a test.
//!
//! Set SWITCHBOARD_TEST_LOG=1 to see the servers' log lines.

mod client;
mod cluster;
mod fds;
mod history;
mod irc_client;
mod limits;
mod mixed;
// A redis-server of the test's own, shared with the bus crate's tests.
#[path = "../../bus/tests/redis_server/mod.rs"]
mod redis_server;
mod runtimes;
// The tokio runtime of examples/tokio-server: the driver on a third runtime.
mod scenarios;
mod tls;
#[cfg(feature = "smol")]
#[path = "../../examples/tokio-server/runtime.rs"]
mod tokio_runtime;

/// Stamps out one `#[test]` per scenario for each runtime; scenarios are listed under the
/// module that holds them, each with the open files it holds at most when more than
/// `fds::SCENARIO` (see fds.rs).
macro_rules! conformance {
    ($($module:ident: [$($scenario:ident $(($fds:expr))?),* $(,)?]),* $(,)?) => {
        conformance!(@on "smol", smol, $($module: [$($scenario $(($fds))?),*]),*);
        conformance!(@on "async-std", async_std, $($module: [$($scenario $(($fds))?),*]),*);
        conformance!(@on "std", std, $($module: [$($scenario $(($fds))?),*]),*);
        conformance!(@on "smol", tokio, $($module: [$($scenario $(($fds))?),*]),*);
        // The same scenarios with every client over TLS.
        conformance!(@on "smol", smol_tls, $($module: [$($scenario $(($fds))?),*]),*);
        conformance!(@on "async-std", async_std_tls, $($module: [$($scenario $(($fds))?),*]),*);
        conformance!(@on "std", std_tls, $($module: [$($scenario $(($fds))?),*]),*);
        conformance!(@on "smol", tokio_tls, $($module: [$($scenario $(($fds))?),*]),*);
    };
    (@on $feature:literal, $runtime:ident,
     $($module:ident: [$($scenario:ident $(($fds:expr))?),*]),*) => {
        #[cfg(feature = $feature)]
        mod $runtime {
            $($(#[test]
            fn $scenario() {
                let fds = crate::fds::SCENARIO $(.max($fds))?;
                let name = concat!(stringify!($runtime), "::", stringify!($scenario));
                if let Some(_held) = crate::fds::reserve(name, fds) {
                    crate::$module::$scenario(crate::runtimes::$runtime)
                }
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
        burst_is_delayed_not_dropped,
        flooder_is_paused_and_not_read,
        flooders_are_paced_by_a_reader_that_lags,
        trickled_frame_is_closed,
        requests_before_a_half_close_are_answered,
        thousand_clients(crate::scenarios::THOUSAND_CLIENTS_FDS),
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
    // Connection limits; the hello deadline (over TLS: a stalled handshake).
    limits: [
        per_address_limit(crate::limits::PER_ADDRESS_FDS),
        global_limit,
        silent_connection_closed_at_hello_deadline,
    ],
);

/// Scenarios only a TLS listener has, on each runtime.
macro_rules! tls_only {
    ($($feature:literal $runtime:ident),*) => {
        mod tls_only {
            $(#[cfg(feature = $feature)]
            mod $runtime {
                #[test]
                fn plain_client_on_tls_port() {
                    let name = concat!(stringify!($runtime), "::plain_client_on_tls_port");
                    if let Some(_held) = crate::fds::reserve(name, crate::fds::SCENARIO) {
                        crate::limits::plain_client_on_tls_port(crate::runtimes::$runtime)
                    }
                }
            })*
        }
    };
}

tls_only!("smol" smol_tls, "async-std" async_std_tls, "std" std_tls, "smol" tokio_tls);
