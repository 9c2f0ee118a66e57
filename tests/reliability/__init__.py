"""Reliability and security, in figures (issue 7).

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
    host SIGKILLed: plugin gone < 2 s, its socket removed
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

Load
    64 concurrent callers, mixed unary and streaming, unix and tcp, TLS on: no failed call,
    plugin RSS at the end within 10 % of after the warm-up
        ``test_load::test_64_callers_mixed_calls_none_fails_memory_flat`` (unix and tcp with
        grpcio's TLS, unix with the OpenSSL relay)
"""
