"""Reliability and security, in figures (issues 7 and 18).

``pytest tests/reliability`` (part of ``make test``; about two minutes on two cores) ends with
one line, e.g. ``reliability: 15354 cases, 177 faults injected, 0 leaks, 0 failed calls (of
30988)``. ``make soak`` (``python -m tests.reliability.soak``) runs the same tests at soak scale
(``RELIABILITY_SOAK=1``, about eleven minutes, not in CI). Figures: :mod:`.figures`; plugin under
test: :mod:`.relplugin` (``rpcplugin.serve``); a host in its own process: :mod:`.host_proc`.

Where each failure mode of the issue is tested: new tests here (``test_*`` modules of this
package), and what was already proven elsewhere (``tests/...``), which is not repeated.

Faults
    plugin SIGKILLed mid-unary and mid-stream: UNAVAILABLE-class error < 1 s, exit noticed
        ``test_faults::test_plugin_sigkilled_mid_unary_and_mid_stream`` (unix/tcp x
        plaintext/grpcio TLS/OpenSSL relay); ``tests/host/test_exit_during_call.py``
        (PluginExitedDuringCall from generated clients)
    host SIGKILLed: plugin gone < 2 s, its socket and every directory removed (the watchdog)
        ``test_faults::test_host_sigkilled_plugin_exits_within_2s_and_removes_its_socket``;
        ``tests/plugin/test_p27_p32_process.py::test_p31_*`` (a shell as the host)
    plugin wedged when Shutdown arrives: bounded close
        ``test_faults::test_plugin_wedged_in_a_handler_close_is_bounded_and_kills``,
        ``test_faults::test_calls_in_flight_at_shutdown_are_ended_and_close_is_quick``;
        ``tests/host/test_misbehaving.py::test_wedged_on_shutdown_is_killed_within_the_bound``,
        ``tests/host/test_go_plugin.py::test_go_plugin_ignoring_shutdown_is_killed_*``
    a forked child holding stdout/stderr: close still bounded
        ``test_faults::test_grandchild_holding_stdout_and_stderr``;
        ``tests/host/test_misbehaving.py::test_close_is_bounded_when_a_grandchild_*``,
        ``tests/host/test_misbehaving.py::test_exit_before_handshake_while_a_grandchild_*``
    50 plugins launched concurrently from one host
        ``test_faults::test_50_python_plugins_launched_concurrently``,
        ``test_faults::test_50_go_plugins_launched_concurrently``,
        ``test_faults::test_concurrent_tcp_plugins_racing_for_a_port_all_start`` (the TCP
        port race: a port taken between probe and bind moves the search on),
        ``test_faults::test_a_tcp_port_lost_to_another_process_is_a_clean_exit_4``
    a plugin relaunched after one died: on its port, through the host's old connection's
    backoff, past its TIME_WAIT connections
        ``test_faults::test_a_plugin_relaunched_on_the_port_of_a_dead_one_connects``,
        ``test_faults::test_a_port_held_only_by_time_wait_connections_is_taken``
    1,000 launch/close cycles: fd, child-process and socket-file counts before and after
        ``test_faults::test_1000_launch_close_cycles_leave_no_fd_child_or_socket`` (Go plugin;
        10,000 in soak), ``test_faults::test_python_plugin_launch_close_cycles``;
        ``tests/host/test_soak.py``

Fuzzing (only documented exceptions, never a crash or a hang)
    handshake line, PluginSettings/ConnectSettings.from_env, parse_reattach, hclog both ways
        ``test_fuzz`` (7 targets, 2,000 cases each, 10,000 in soak, each under a time limit);
        ``tests/test_handshake.py``, ``tests/test_hclog.py``, ``tests/test_config.py``

Security
    a TLS plugin refuses no certificate, a self-signed one of its own, an expired one
        ``test_security::test_tls_plugin_refuses_strangers_and_expired_certificates``,
        ``test_security::test_the_pinned_certificate_itself_is_refused_once_expired_*``;
        ``tests/plugin/test_p15_p19_tls.py::test_p15_refuses_*``
    unix sockets owner-only (0660 with a group), with no window where they are wider
        ``test_security::test_unix_sockets_are_never_wider_than_allowed_not_even_for_a_*``;
        ``tests/plugin/test_p11_p14_transport.py::test_p12_*`` (the final modes)
    private keys never written to disk nor logged; the cookie never logged
        ``test_security::test_private_keys_never_reach_the_disk_and_no_log_shows_a_key_*``
        and its control ``test_security::test_the_key_scan_sees_a_key_written_and_*``,
        ``test_security::test_a_wrong_cookie_is_reported_without_either_value``
    SecureConfig rejects a modified executable
        ``test_security::test_secure_config_rejects_a_modified_executable``;
        ``tests/host/test_h_lines.py::test_h09_*``
    a plugin sending an unasked certificate, a line over 64 KiB, a line with a NUL
        ``tests/host/test_misbehaving.py::test_certificate_the_host_did_not_ask_for``,
        ``tests/host/test_misbehaving.py::test_handshake_line_over_64_kib_is_refused``,
        ``tests/host/test_misbehaving.py::test_handshake_line_with_nul_is_refused``;
        repeated with a leak count:
        ``test_security::test_hostile_handshakes_are_refused_cleanly_again_and_again``

Signals (issue 18 §1): whatever ends the host, no plugin and no directory outlives it
    SIGTERM, SIGKILL, SIGINT of a host holding the Go plugin and a Python plugin: both gone,
    their directories (and the Go plugin's socket) removed, within 2 s
        ``test_signals::test_host_killed_by_a_signal_leaves_no_plugin_and_no_directory``
    ``close_on_signals()``: Shutdown first, then the host dies of the signal
        ``test_signals::test_close_on_signals_shuts_plugins_down_then_dies_of_the_signal``
    a launch from an event loop in a thread that ended (what PR_SET_PDEATHSIG gets wrong)
        ``test_signals::test_plugins_launched_from_a_thread_that_ended_live_on_until_*``
    the watchdog itself killed: replaced and told everything
        ``test_signals::test_a_killed_watchdog_is_replaced_and_told_everything``
    directories of dead hosts swept by the next launch, and what must stay
        ``test_signals::test_directories_of_dead_hosts_are_swept_by_the_next_launch``

Lifecycle races (issue 18 §2): callers only see documented errors
    50 calls and 5 streams in flight at close(): only ``ConnectionClosedDuringCall``
        ``test_lifecycle::test_50_calls_in_flight_at_close_all_end_with_the_documented_error``
    a call after close; the caller's own cancel; a cancelled stream (no ERROR, prompt finally)
        ``test_lifecycle::test_a_call_after_close_is_a_connection_closed_error``,
        ``test_lifecycle::test_the_callers_own_cancellation_stays_a_cancellation``,
        ``test_lifecycle::test_a_cancelled_stream_logs_nothing_and_its_finally_runs_at_once``

Malformed settings (issue 18 §3, §4): one line naming the thing, the right exit status
    ports outside 1-65535 in connect(), reattach, launch() and a TCP plugin; a socket dir that
    is a file; port settings ignored by a unix plugin; logging scoped to the runtime and the
    plugin code (grpc's per-call lines stay out)
        ``test_settings`` (each case its own test); ``tests/plugin/test_bad_input.py``

Certificate edge cases (issue 18 §3)
    expired, not yet valid, one bad in a bundle (exit 3, the dates named); every certificate of
    a bundle trusted and no other, grpcio's TLS forced on a bundle (exit 2), not PEM
        ``test_security::test_an_expired_client_cert_exits_3_naming_its_dates`` and the
        ``test_security`` tests after it

Load
    64 concurrent callers, mixed unary and streaming, unix and tcp, TLS on: no failed call,
    plugin RSS at the end within 10 % of after the warm-up
        ``test_load::test_64_callers_mixed_calls_none_fails_memory_flat`` (unix and tcp with
        grpcio's TLS, unix with the OpenSSL relay)
"""
