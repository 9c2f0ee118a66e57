// Command gohost is a real go-plugin 1.0.1 host (plugin.NewClient with
// AllowedProtocols grpc) for the conformance protocol (tests/protos/conformance).
// It launches a plugin, makes the calls it is told to, kills the plugin, and
// reports everything as JSON lines on stdout so Python tests can assert on
// them. Built by tests/gopeers.py.
//
// # Usage
//
//	gohost [flags] -- PLUGIN_ARGV...
//	gohost [flags] -reattach '<json>'
//
// Flags:
//
//	-cookie-key K        magic cookie key (default RPCPLUGIN_CONFORMANCE)
//	-cookie-value V      magic cookie value (default conformance-v1)
//	-versions 1,2        app versions offered (VersionedPlugins); any ints, may
//	                     be empty. Versions other than 1 and 2 have only "ping"
//	-automtls            ClientConfig.AutoMTLS
//	-calls LIST          comma list of ping,echo,bigecho,count,sum,chat,info,echo2,
//	                     and the host-only steps sleep (wait -sleep) and status
//	                     (report Client.Exited); repeats allowed. Default: for version 1
//	                     ping,echo,bigecho,count,sum,chat,info; for version 2
//	                     ping,echo2; otherwise ping. Any call may be asked for
//	                     under any version (a plugin without that service
//	                     answers Unimplemented)
//	-text S              Echo/echo2 text (default "hello")
//	-payload-size N      bigecho payload bytes (default 5 MiB, over grpc's 4 MiB default)
//	-count-n N           Count's n (default 5)
//	-count-payload N     Count's payload_size (default 0)
//	-sum-values LIST     values sent by Sum (default 1,2,3,4,5)
//	-chat LIST           messages sent by Chat, one round trip each (default a,b,c)
//	-sleep D             how long the "sleep" step waits (default 100ms)
//	-info-env LIST       extra env names for Info (always asked: the -env names,
//	                     the cookie key, PLUGIN_PROTOCOL_VERSIONS, PLUGIN_MIN_PORT,
//	                     PLUGIN_MAX_PORT)
//	-env K=V             extra environment for the plugin (repeatable). Set in the
//	                     host's own environment, so it wins over an inherited
//	                     value, but go-plugin's own variables still win over it
//	-start-timeout D     ClientConfig.StartTimeout (default 1m, go-plugin's default)
//	-call-timeout D      deadline of each call (default 30s)
//	-deadline D          watchdog for the whole run (default 2m): on expiry report
//	                     stage "deadline", SIGKILL the plugin, exit 2
//	-keep-going          after a failed call go on with the next one
//	-stderr-events       also report each raw plugin stderr line as an event
//	-log-level L         level of the host's hclog output on stderr:
//	                     trace|debug|info|warn (default debug)
//	-reattach JSON       attach to a running plugin instead of launching one:
//	                     {"Protocol":"grpc","Pid":P,"Addr":{"Network":"unix","String":"/path"}}
//	                     or a map of one name to that (Terraform's
//	                     TF_REATTACH_PROVIDERS shape). Plaintext only.
//	-reattach-version N  app version to use when reattaching (default: the JSON's
//	                     ProtocolVersion, else the highest of -versions)
//	-checksum HEX        ClientConfig.SecureConfig: the plugin executable's SHA-256
//	                     must be HEX, or Start fails (stage "start")
//
// # Output
//
// stdout carries only JSON objects, one a line, each with an "event" key; "ms"
// is a duration in milliseconds (float):
//
//	{"event":"started","version":2,"pid":123,"ms":7.1,"protocol":"grpc","network":"unix","addr":"/tmp/plugin99","automtls":true,"server_cert":true,"reattach":false}
//	{"event":"ping","ok":true,"ms":0.4}
//	{"event":"echo","text":"hello","version":1,"ms":0.3}
//	{"event":"bigecho","size":5242880,"version":1,"ms":12.0}
//	{"event":"count","values":[1,2,3,4,5],"payload_bytes":0,"ms":0.5}
//	{"event":"sum","total":15,"count":5,"ms":0.4}
//	{"event":"chat","replies":["a","b","c"],"ms":0.6}
//	{"event":"info","pid":123,"version":1,"env":{"K":"V"},"implementation":"go","ms":0.3}
//	{"event":"echo2","text":"HELLO","version":2,"ms":0.3}
//	{"event":"sleep","ms":100.1}
//	{"event":"status","exited":false,"ms":0.0}
//	{"event":"stderr","line":"..."}            (only with -stderr-events, any time)
//	{"event":"error","stage":"start","error":"..."}   stage: start|client|dispense|<call>|deadline
//	{"event":"killed","ms":2003.5,"graceful":false,"exited":true}
//
// "version" in started is the negotiated one (Client.NegotiatedVersion); in a
// call event it is what the plugin put in its reply. "server_cert" says the
// plugin sent a certificate in handshake field 6. "killed" comes last whenever a
// process was started or attached, also after errors: graceful means go-plugin
// did not log "plugin failed to exit gracefully" (i.e. no SIGKILL was needed);
// exited means the pid is gone (or a zombie) once Kill returned. bigecho checks
// the echoed payload byte for byte and reports a mismatch as an error.
//
// The exit status is 0 when there was no error event, 1 otherwise, 2 when the
// deadline expired. stderr carries the host's hclog output (which includes
// go-plugin's re-logging of the plugin's stderr) and the plugin's raw stderr
// lines.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	conformancev1 "conformance/v1"
	conformancev2 "conformance/v2"
	"rpcpeers/shared"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
)

// ---- JSON events on stdout ----

var outMu sync.Mutex

type event map[string]interface{}

func emit(name string, e event) {
	// "event" comes first, then the other keys in sorted order.
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "{\"event\":%q", name)
	if len(e) > 0 {
		var rest bytes.Buffer
		enc := json.NewEncoder(&rest)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(e); err != nil {
			fmt.Fprintf(&buf, ",\"stage\":\"output\",\"error\":%q", err.Error())
		} else {
			buf.WriteByte(',')
			buf.Write(bytes.TrimSpace(rest.Bytes())[1:]) // skip the "{"
			buf.Truncate(buf.Len() - 1)                  // drop the "}"
		}
	}
	buf.WriteString("}\n")
	outMu.Lock()
	defer outMu.Unlock()
	os.Stdout.Write(buf.Bytes())
}

func ms(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

// ---- flags ----

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

type options struct {
	cookieKey, cookieValue string
	versions               []int
	autoMTLS               bool
	calls                  []string
	callsSet               bool
	text                   string
	payloadSize            int
	countN, countPayload   int
	sumValues              []int64
	chat                   []string
	sleep                  time.Duration
	infoEnv                []string
	env                    listFlag
	startTimeout           time.Duration
	callTimeout            time.Duration
	deadline               time.Duration
	keepGoing              bool
	stderrEvents           bool
	logLevel               string
	reattach               string
	reattachVersion        int
	checksum               string
	argv                   []string
}

var knownCalls = map[string]bool{
	"ping": true, "echo": true, "bigecho": true, "count": true, "sum": true,
	"chat": true, "info": true, "echo2": true, "sleep": true, "status": true,
}

func parseFlags() (*options, error) {
	o := &options{}
	var versions, calls, sums, chat, infoEnv string
	fs := flag.NewFlagSet("gohost", flag.ContinueOnError)
	fs.StringVar(&o.cookieKey, "cookie-key", shared.DefaultCookieKey, "magic cookie key")
	fs.StringVar(&o.cookieValue, "cookie-value", shared.DefaultCookieValue, "magic cookie value")
	fs.StringVar(&versions, "versions", "1,2", "app protocol versions offered")
	fs.BoolVar(&o.autoMTLS, "automtls", false, "enable AutoMTLS")
	fs.StringVar(&calls, "calls", "", "calls to make (default: all that fit the version)")
	fs.StringVar(&o.text, "text", "hello", "Echo text")
	fs.IntVar(&o.payloadSize, "payload-size", 5<<20, "bigecho payload size in bytes")
	fs.IntVar(&o.countN, "count-n", 5, "Count's n")
	fs.IntVar(&o.countPayload, "count-payload", 0, "Count's payload_size")
	fs.StringVar(&sums, "sum-values", "1,2,3,4,5", "values for Sum")
	fs.StringVar(&chat, "chat", "a,b,c", "messages for Chat")
	fs.DurationVar(&o.sleep, "sleep", 100*time.Millisecond, "how long the sleep step waits")
	fs.StringVar(&infoEnv, "info-env", "", "extra env names for Info")
	fs.Var(&o.env, "env", "K=V for the plugin's environment (repeatable)")
	fs.DurationVar(&o.startTimeout, "start-timeout", time.Minute, "StartTimeout")
	fs.DurationVar(&o.callTimeout, "call-timeout", 30*time.Second, "deadline of each call")
	fs.DurationVar(&o.deadline, "deadline", 2*time.Minute, "watchdog for the whole run")
	fs.BoolVar(&o.keepGoing, "keep-going", false, "go on after a failed call")
	fs.BoolVar(&o.stderrEvents, "stderr-events", false, "report plugin stderr lines as events")
	fs.StringVar(&o.logLevel, "log-level", "debug", "host hclog level: trace|debug|info|warn")
	fs.StringVar(&o.reattach, "reattach", "", "reattach config JSON")
	fs.IntVar(&o.reattachVersion, "reattach-version", 0, "app version when reattaching")
	fs.StringVar(&o.checksum, "checksum", "", "SecureConfig: the plugin's SHA-256 (hex)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return nil, err
	}
	o.argv = fs.Args()
	for _, v := range splitList(versions) {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("-versions: %q is not an integer", v)
		}
		o.versions = append(o.versions, n)
	}
	sort.Ints(o.versions)
	o.callsSet = calls != ""
	for _, c := range splitList(calls) {
		if !knownCalls[c] {
			return nil, fmt.Errorf("-calls: unknown call %q", c)
		}
		o.calls = append(o.calls, c)
	}
	for _, v := range splitList(sums) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("-sum-values: %q is not an integer", v)
		}
		o.sumValues = append(o.sumValues, n)
	}
	o.chat = splitList(chat)
	o.infoEnv = splitList(infoEnv)
	for _, kv := range o.env {
		if !strings.Contains(kv, "=") || strings.HasPrefix(kv, "=") {
			return nil, fmt.Errorf("-env: %q is not K=V", kv)
		}
	}
	if o.reattach == "" && len(o.argv) == 0 {
		return nil, errors.New("no plugin command given after --")
	}
	if o.reattach != "" && len(o.argv) != 0 {
		return nil, errors.New("-reattach and a plugin command exclude each other")
	}
	return o, nil
}

func defaultCalls(version int) []string {
	switch version {
	case 1:
		return []string{"ping", "echo", "bigecho", "count", "sum", "chat", "info"}
	case 2:
		return []string{"ping", "echo2"}
	default:
		return []string{"ping"}
	}
}

// ---- logging ----

// syncBuffer keeps the host's hclog output so Kill's warnings can be checked.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Contains(s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Contains(b.buf.Bytes(), []byte(s))
}

// stderrWriter receives the plugin's raw stderr from go-plugin (which writes
// each line and its newline in separate calls), copies it to our stderr and
// optionally reports each line as an event.
type stderrWriter struct {
	mu      sync.Mutex
	partial []byte
	events  bool
}

func (w *stderrWriter) Write(p []byte) (int, error) {
	os.Stderr.Write(p)
	if !w.events {
		return len(p), nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		emit("stderr", event{"line": string(w.partial[:i])})
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

// ---- reattach ----

type reattachJSON struct {
	Protocol        string
	ProtocolVersion int
	Pid             int
	Addr            *struct{ Network, String string }
}

func parseReattach(s string) (*reattachJSON, error) {
	var single reattachJSON
	if err := json.Unmarshal([]byte(s), &single); err == nil && single.Addr != nil {
		return &single, nil
	}
	var many map[string]reattachJSON
	if err := json.Unmarshal([]byte(s), &many); err != nil {
		return nil, fmt.Errorf("reattach config: %w", err)
	}
	if len(many) != 1 {
		return nil, fmt.Errorf("reattach config: want one plugin, got %d", len(many))
	}
	for _, rc := range many {
		if rc.Addr == nil {
			return nil, errors.New("reattach config: no Addr")
		}
		rc := rc
		return &rc, nil
	}
	panic("unreachable")
}

func resolveAddr(network, addr string) (net.Addr, error) {
	switch network {
	case "unix":
		return net.ResolveUnixAddr("unix", addr)
	case "tcp":
		return net.ResolveTCPAddr("tcp", addr)
	}
	return nil, fmt.Errorf("unknown network %q", network)
}

// ---- process checks ----

// pidGone reports whether pid no longer names a live process: it does not
// exist, or it is a zombie nobody has reaped yet.
func pidGone(pid int) bool {
	if pid <= 0 {
		return true
	}
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return os.IsNotExist(err)
	}
	// The state follows the parenthesised command name.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] == 'Z' || stat[i+2] == 'X'
	}
	return false
}

// ---- main ----

func main() {
	os.Exit(run())
}

func run() int {
	o, err := parseFlags()
	if err != nil {
		emit("error", event{"stage": "flags", "error": err.Error()})
		return 1
	}

	level := hclog.LevelFromString(o.logLevel)
	if level == hclog.NoLevel || level > hclog.Warn {
		level = hclog.Warn // Kill's "failed to exit gracefully" is a Warn
	}
	logs := &syncBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:   "gohost",
		Level:  level,
		Output: io.MultiWriter(os.Stderr, logs),
	})

	for _, kv := range o.env {
		i := strings.IndexByte(kv, '=')
		os.Setenv(kv[:i], kv[i+1:])
	}

	sets := map[int]plugin.PluginSet{}
	for _, v := range o.versions {
		sets[v] = plugin.PluginSet{shared.PluginName: &shared.Plugin{Version: v}}
	}
	cfg := &plugin.ClientConfig{
		HandshakeConfig: plugin.HandshakeConfig{
			MagicCookieKey:   o.cookieKey,
			MagicCookieValue: o.cookieValue,
		},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           logger,
		StartTimeout:     o.startTimeout,
		Stderr:           &stderrWriter{events: o.stderrEvents},
		AutoMTLS:         o.autoMTLS,
	}
	var cmd *exec.Cmd
	reattachVersion := 0
	if o.reattach != "" {
		rc, err := parseReattach(o.reattach)
		if err != nil {
			emit("error", event{"stage": "flags", "error": err.Error()})
			return 1
		}
		addr, err := resolveAddr(rc.Addr.Network, rc.Addr.String)
		if err != nil {
			emit("error", event{"stage": "flags", "error": err.Error()})
			return 1
		}
		reattachVersion = o.reattachVersion
		if reattachVersion == 0 {
			reattachVersion = rc.ProtocolVersion
		}
		if reattachVersion == 0 && len(o.versions) > 0 {
			reattachVersion = o.versions[len(o.versions)-1]
		}
		cfg.Reattach = &plugin.ReattachConfig{
			Protocol: plugin.Protocol(rc.Protocol),
			Addr:     addr,
			Pid:      rc.Pid,
		}
		cfg.Plugins = plugin.PluginSet{shared.PluginName: &shared.Plugin{Version: reattachVersion}}
		cfg.AutoMTLS = false
	} else {
		cmd = exec.Command(o.argv[0], o.argv[1:]...)
		cfg.Cmd = cmd
		cfg.VersionedPlugins = sets
		if o.checksum != "" {
			sum, err := hex.DecodeString(o.checksum)
			if err != nil {
				emit("error", event{"stage": "flags", "error": "-checksum: " + err.Error()})
				return 1
			}
			cfg.SecureConfig = &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
		}
	}

	client := plugin.NewClient(cfg)
	var pidMu sync.Mutex
	pid := 0
	if cfg.Reattach != nil {
		pid = cfg.Reattach.Pid
	}

	time.AfterFunc(o.deadline, func() {
		emit("error", event{"stage": "deadline", "error": fmt.Sprintf("gohost did not finish within %s", o.deadline)})
		pidMu.Lock()
		p := pid
		pidMu.Unlock()
		if p == 0 && cmd != nil && cmd.Process != nil {
			p = cmd.Process.Pid
		}
		if p > 0 {
			syscall.Kill(p, syscall.SIGKILL)
		}
		os.Exit(2)
	})

	failed := false
	fail := func(stage string, err error) {
		failed = true
		emit("error", event{"stage": stage, "error": err.Error()})
	}

	kill := func() {
		pidMu.Lock()
		p := pid
		pidMu.Unlock()
		if p == 0 && cmd != nil && cmd.Process != nil {
			p = cmd.Process.Pid
		}
		if p == 0 {
			return // nothing was started
		}
		t0 := time.Now()
		client.Kill()
		d := time.Since(t0)
		emit("killed", event{
			"ms":       ms(d),
			"graceful": !logs.Contains("plugin failed to exit gracefully"),
			"exited":   pidGone(p),
		})
	}
	defer func() {
		// Whatever happened, do not leave the plugin behind.
		if r := recover(); r != nil {
			fail("panic", fmt.Errorf("%v", r))
			kill()
			os.Exit(1)
		}
	}()

	// Start, catching the nil-pointer panic go-plugin 1.0.1 has when a plugin
	// sends a certificate to a host without AutoMTLS.
	t0 := time.Now()
	startErr := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic in plugin.Client.Start: %v", r)
			}
		}()
		_, err = client.Start()
		return err
	}()
	startMs := ms(time.Since(t0))
	if startErr != nil {
		fail("start", startErr)
		kill()
		return 1
	}
	rc := client.ReattachConfig()
	version := client.NegotiatedVersion()
	if cfg.Reattach != nil {
		version = reattachVersion
	}
	pidMu.Lock()
	pid = rc.Pid
	pidMu.Unlock()
	emit("started", event{
		"version":     version,
		"pid":         rc.Pid,
		"ms":          startMs,
		"protocol":    string(client.Protocol()),
		"network":     rc.Addr.Network(),
		"addr":        rc.Addr.String(),
		"automtls":    cfg.AutoMTLS,
		"server_cert": cfg.TLSConfig != nil && cfg.TLSConfig.RootCAs != nil,
		"reattach":    cfg.Reattach != nil,
	})

	proto, err := client.Client()
	if err != nil {
		fail("client", err)
		kill()
		return 1
	}
	raw, err := proto.Dispense(shared.PluginName)
	if err != nil {
		fail("dispense", err)
		kill()
		return 1
	}
	stubs, ok := raw.(*shared.Stubs)
	if !ok {
		fail("dispense", fmt.Errorf("dispensed %T, want *shared.Stubs", raw))
		kill()
		return 1
	}

	calls := o.calls
	if !o.callsSet {
		calls = defaultCalls(version)
	}
	infoEnv := []string{o.cookieKey, "PLUGIN_PROTOCOL_VERSIONS", "PLUGIN_MIN_PORT", "PLUGIN_MAX_PORT"}
	for _, kv := range o.env {
		infoEnv = append(infoEnv, kv[:strings.IndexByte(kv, '=')])
	}
	infoEnv = append(infoEnv, o.infoEnv...)

	for _, call := range calls {
		ctx, cancel := context.WithTimeout(context.Background(), o.callTimeout)
		t := time.Now()
		e, err := doCall(ctx, call, client, proto, stubs, o, infoEnv)
		cancel()
		if err != nil {
			fail(call, err)
			if !o.keepGoing {
				break
			}
			continue
		}
		e["ms"] = ms(time.Since(t))
		emit(call, e)
	}

	kill()
	if failed {
		return 1
	}
	return 0
}

func doCall(ctx context.Context, call string, client *plugin.Client, proto plugin.ClientProtocol, s *shared.Stubs, o *options, infoEnv []string) (event, error) {
	switch call {
	case "sleep":
		time.Sleep(o.sleep)
		return event{}, nil

	case "status":
		return event{"exited": client.Exited()}, nil

	case "ping":
		if err := proto.Ping(); err != nil {
			return nil, err
		}
		return event{"ok": true}, nil

	case "echo":
		r, err := s.V1.Echo(ctx, &conformancev1.EchoRequest{Text: o.text})
		if err != nil {
			return nil, err
		}
		return event{"text": r.Text, "version": r.Version}, nil

	case "bigecho":
		payload := make([]byte, o.payloadSize)
		for i := range payload {
			payload[i] = byte(i * 31)
		}
		r, err := s.V1.Echo(ctx, &conformancev1.EchoRequest{Text: "big", Payload: payload})
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(r.Payload, payload) {
			return nil, fmt.Errorf("payload mismatch: sent %d bytes, got %d bytes back", len(payload), len(r.Payload))
		}
		return event{"size": len(r.Payload), "version": r.Version}, nil

	case "count":
		stream, err := s.V1.Count(ctx, &conformancev1.CountRequest{N: int32(o.countN), PayloadSize: int32(o.countPayload)})
		if err != nil {
			return nil, err
		}
		values := []int32{}
		total := 0
		for {
			r, err := stream.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
			values = append(values, r.I)
			total += len(r.Payload)
		}
		return event{"values": values, "payload_bytes": total}, nil

	case "sum":
		stream, err := s.V1.Sum(ctx)
		if err != nil {
			return nil, err
		}
		for _, v := range o.sumValues {
			if err := stream.Send(&conformancev1.SumRequest{Value: v}); err != nil {
				// The real error comes from CloseAndRecv.
				break
			}
		}
		r, err := stream.CloseAndRecv()
		if err != nil {
			return nil, err
		}
		return event{"total": r.Total, "count": r.Count}, nil

	case "chat":
		stream, err := s.V1.Chat(ctx)
		if err != nil {
			return nil, err
		}
		replies := []string{}
		for _, m := range o.chat {
			if err := stream.Send(&conformancev1.ChatMessage{Text: m}); err != nil {
				if err == io.EOF {
					break // the real error comes from Recv
				}
				return nil, err
			}
			r, err := stream.Recv()
			if err != nil {
				return nil, fmt.Errorf("after sending %q: %w", m, err)
			}
			replies = append(replies, r.Text)
		}
		if err := stream.CloseSend(); err != nil {
			return nil, err
		}
		for {
			r, err := stream.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
			replies = append(replies, r.Text)
		}
		return event{"replies": replies}, nil

	case "info":
		r, err := s.V1.Info(ctx, &conformancev1.InfoRequest{Env: infoEnv})
		if err != nil {
			return nil, err
		}
		env := r.Env
		if env == nil {
			env = map[string]string{}
		}
		return event{"pid": r.Pid, "version": r.Version, "env": env, "implementation": r.Implementation}, nil

	case "echo2":
		r, err := s.V2.Echo(ctx, &conformancev2.EchoRequest{Text: o.text})
		if err != nil {
			return nil, err
		}
		return event{"text": r.Text, "version": r.Version}, nil
	}
	return nil, fmt.Errorf("unknown call %q", call)
}
