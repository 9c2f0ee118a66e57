// Command goplugin is a real go-plugin 1.0.1 plugin serving the conformance
// protocol (tests/protos/conformance), for the Python host tests and for the Go
// host (gohost). It is built by tests/gopeers.py; do not run it by hand: like
// every go-plugin plugin it exits 1 unless its magic cookie is set.
//
// # Protocol versions
//
// VersionedPlugins {1: conformance.v1.Conformance, 2: conformance.v2.Conformance}.
// go-plugin's own negotiation picks the highest version in both
// PLUGIN_PROTOCOL_VERSIONS and the served set, else announces the lowest served
// version. go-plugin 1.0.1 gives a plugin no API for the negotiated version, but
// it calls GRPCServer only for the chosen version's PluginSet, so each
// version's Register closure knows it: that is the version reported in
// EchoReply.version and InfoReply.version.
//
// # Services
//
//   - conformance.v1.Conformance (registered when version 1 is negotiated):
//     Echo returns text and payload unchanged; Count sends CountReply{i, payload}
//     for i = 1..n, each payload payload_size bytes of 'x' (n < 0 or
//     payload_size < 0: InvalidArgument); Sum returns the total and the number of
//     values; Chat answers every message at once with the same text and returns
//     OK when the host closes its side; Info returns pid, version, the requested
//     environment variables that are set (unset names are left out) and
//     implementation "go".
//   - conformance.v2.Conformance (registered when version 2 is negotiated): Echo
//     returns the text upper-cased and version 2.
//   - go-plugin's own: grpc.health.v1.Health ("plugin" SERVING),
//     plugin.GRPCBroker, plugin.GRPCController (Shutdown stops the server and
//     the process exits 0).
//   - grpc.reflection.v1alpha.ServerReflection (grpc-go's reflection package),
//     standing in for modern go-plugin, which registers reflection on every
//     plugin (1.0.1 does not); GOPLUGIN_REFLECTION=off leaves it out.
//
// Message limits: send/receive limits are raised to 2^31-1 (as Terraform's SDK
// does), unless GOPLUGIN_GRPC_SERVER=default selects plugin.DefaultGRPCServer,
// whose grpc-go default receive limit is 4 MiB.
//
// # Environment
//
//	GOPLUGIN_COOKIE_KEY, GOPLUGIN_COOKIE_VALUE
//	    magic cookie (default RPCPLUGIN_CONFORMANCE=conformance-v1)
//	GOPLUGIN_VERSIONS=1,2        versions served (any non-empty subset of 1,2)
//	GOPLUGIN_V2_WITH_V1=1        version 2 also registers the v1 service (its
//	                             replies then report version 2)
//	GOPLUGIN_GRPC_SERVER=default use plugin.DefaultGRPCServer (4 MiB receive limit)
//	GOPLUGIN_REFLECTION=off      serve no server reflection
//	GOPLUGIN_LOG_LEVEL=debug     hclog level of the plugin's JSON logs on stderr
//	                             (trace|debug|info|warn|error|off)
//
// Misbehaviour switches, for host-side tests:
//
//	GOPLUGIN_SLOW_START_MS=N          sleep N ms before serving (StartTimeout tests)
//	GOPLUGIN_EXIT_BEFORE_HANDSHAKE=C  exit with status C before writing anything
//	GOPLUGIN_HANDSHAKE_TEMPLATE=T     write T instead of the handshake line, with
//	                                  "{line}" replaced by the real line (without
//	                                  its newline) and "\n" escapes expanded; a
//	                                  newline is appended. E.g. "{line}|true",
//	                                  "junk\n{line}", "1|9|unix|/nowhere|grpc|"
//	GOPLUGIN_EXIT_AFTER_HANDSHAKE_MS=N exit N ms after the handshake line is out,
//	                                  with status GOPLUGIN_EXIT_CODE (default 3);
//	                                  with N=0 no call is ever answered, so a host
//	                                  sees the exit however its scheduling goes
//	GOPLUGIN_SHUTDOWN=ignore          answer GRPCController/Shutdown but keep
//	                                  running (the host SIGKILLs after 2 s)
//
// # Debug (reattach) mode
//
// GOPLUGIN_DEBUG=1: no cookie check and no handshake. The plugin serves
// plaintext on a fresh unix socket the highest version in GOPLUGIN_VERSIONS and
// prints one JSON line on stdout:
//
//	{"Protocol":"grpc","ProtocolVersion":2,"Pid":123,"Test":true,"Addr":{"Network":"unix","String":"/tmp/goplugin-debug123/plugin.sock"}}
//
// It keeps serving until a host calls GRPCController/Shutdown (or it gets a
// signal), then removes the socket and exits 0. go-plugin 1.0.1 has no
// ServeConfig.Test, so this mode drives plugin.GRPCServer directly.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	conformancev1 "conformance/v1"
	conformancev2 "conformance/v2"
	"rpcpeers/shared"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

var logger hclog.Logger

func main() {
	// Serve swaps the os.Stderr variable for a pipe nobody reads under a 1.0.1
	// host, so every log line must go to the real fd 2 captured here.
	realStderr := os.Stderr
	level := hclog.LevelFromString(envOr("GOPLUGIN_LOG_LEVEL", "debug"))
	if level == hclog.NoLevel {
		level = hclog.Debug
	}
	logger = hclog.New(&hclog.LoggerOptions{
		Name:       "goplugin",
		Level:      level,
		Output:     realStderr,
		JSONFormat: true,
	})
	if strings.EqualFold(os.Getenv("GOPLUGIN_LOG_LEVEL"), "off") {
		logger = hclog.NewNullLogger()
	}

	versions, err := servedVersions(envOr("GOPLUGIN_VERSIONS", "1,2"))
	if err != nil {
		fmt.Fprintf(realStderr, "goplugin: GOPLUGIN_VERSIONS: %s\n", err)
		os.Exit(1)
	}
	v2WithV1 := os.Getenv("GOPLUGIN_V2_WITH_V1") != ""
	sets := map[int]plugin.PluginSet{}
	for _, v := range versions {
		sets[v] = plugin.PluginSet{shared.PluginName: &shared.Plugin{
			Version:  v,
			Register: registrar(v2WithV1),
		}}
	}
	serverFunc := grpcServerFunc()

	if os.Getenv("GOPLUGIN_DEBUG") != "" {
		os.Exit(serveDebug(versions[len(versions)-1], sets, serverFunc))
	}

	if ms := envInt("GOPLUGIN_SLOW_START_MS", 0); ms > 0 {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	if v, ok := os.LookupEnv("GOPLUGIN_EXIT_BEFORE_HANDSHAKE"); ok {
		code, err := strconv.Atoi(v)
		if err != nil {
			code = 3
		}
		logger.Info("exiting before the handshake as told", "code", code)
		os.Exit(code)
	}
	interceptHandshake()

	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: plugin.HandshakeConfig{
			MagicCookieKey:   envOr("GOPLUGIN_COOKIE_KEY", shared.DefaultCookieKey),
			MagicCookieValue: envOr("GOPLUGIN_COOKIE_VALUE", shared.DefaultCookieValue),
		},
		VersionedPlugins: sets,
		GRPCServer:       serverFunc,
		Logger:           logger,
	})
	logger.Debug("plugin.Serve returned, exiting")
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	v, ok := os.LookupEnv(key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "goplugin: %s=%q is not an integer\n", key, v)
		os.Exit(1)
	}
	return n
}

func servedVersions(spec string) ([]int, error) {
	var out []int
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		v, err := strconv.Atoi(item)
		if err != nil || (v != 1 && v != 2) {
			return nil, fmt.Errorf("%q is not a served version (1 or 2)", item)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no versions in %q", spec)
	}
	sort.Ints(out)
	return out, nil
}

// registrar returns the Register function go-plugin calls (through
// shared.Plugin.GRPCServer) for the negotiated version only.
func registrar(v2WithV1 bool) func(int, *grpc.Server) error {
	return func(version int, s *grpc.Server) error {
		logger.Debug("registering conformance services", "version", version)
		switch version {
		case 1:
			conformancev1.RegisterConformanceServer(s, &v1Server{version: 1})
		case 2:
			conformancev2.RegisterConformanceServer(s, &v2Server{})
			if v2WithV1 {
				conformancev1.RegisterConformanceServer(s, &v1Server{version: 2})
			}
		default:
			return fmt.Errorf("no services for version %d", version)
		}
		return nil
	}
}

func grpcServerFunc() func([]grpc.ServerOption) *grpc.Server {
	newServer := baseServerFunc()
	if strings.EqualFold(os.Getenv("GOPLUGIN_REFLECTION"), "off") {
		return newServer
	}
	return func(opts []grpc.ServerOption) *grpc.Server {
		s := newServer(opts)
		// the reflection service reads the server's services when asked, so the
		// ones go-plugin and the plugin set register after this are listed too
		reflection.Register(s)
		return s
	}
}

func baseServerFunc() func([]grpc.ServerOption) *grpc.Server {
	if os.Getenv("GOPLUGIN_GRPC_SERVER") == "default" {
		return plugin.DefaultGRPCServer
	}
	ignoreShutdown := os.Getenv("GOPLUGIN_SHUTDOWN") == "ignore"
	// exiting at once after the line: hold every call until the exit, so that not even
	// the host's health check can win the race against os.Exit
	exitAtOnce := envInt("GOPLUGIN_EXIT_AFTER_HANDSHAKE_MS", -1) == 0
	return func(opts []grpc.ServerOption) *grpc.Server {
		opts = append(opts,
			grpc.MaxRecvMsgSize(math.MaxInt32),
			grpc.MaxSendMsgSize(math.MaxInt32),
		)
		if exitAtOnce {
			opts = append(opts, grpc.StreamInterceptor(func(
				srv interface{}, ss grpc.ServerStream, info *grpc.StreamServerInfo,
				handler grpc.StreamHandler,
			) error {
				select {}
			}))
		}
		if ignoreShutdown || exitAtOnce {
			opts = append(opts, grpc.UnaryInterceptor(func(
				ctx context.Context, req interface{}, info *grpc.UnaryServerInfo,
				handler grpc.UnaryHandler,
			) (interface{}, error) {
				if exitAtOnce {
					select {}
				}
				if info.FullMethod == "/plugin.GRPCController/Shutdown" {
					logger.Warn("ignoring Shutdown as told (GOPLUGIN_SHUTDOWN=ignore)")
					// plugin.Empty and google.protobuf.Empty are both
					// empty on the wire.
					return &emptypb.Empty{}, nil
				}
				return handler(ctx, req)
			}))
		}
		return grpc.NewServer(opts...)
	}
}

// interceptHandshake puts a pipe in front of stdout while plugin.Serve prints
// the handshake line, when a switch needs to rewrite the line or to act once it
// is out. Without such a switch the plugin's stdout is left alone.
func interceptHandshake() {
	template, rewrite := os.LookupEnv("GOPLUGIN_HANDSHAKE_TEMPLATE")
	exitAfter := envInt("GOPLUGIN_EXIT_AFTER_HANDSHAKE_MS", -1)
	if !rewrite && exitAfter < 0 {
		return
	}
	exitCode := envInt("GOPLUGIN_EXIT_CODE", 3)
	realStdout := os.Stdout
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(os.Stderr, "goplugin: pipe: %s\n", err)
		os.Exit(1)
	}
	os.Stdout = w
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		if err != nil && err != io.EOF {
			logger.Error("reading the handshake line", "error", err)
		}
		line = strings.TrimRight(line, "\n")
		out := line
		if rewrite {
			out = strings.ReplaceAll(template, `\n`, "\n")
			out = strings.ReplaceAll(out, "{line}", line)
		}
		logger.Debug("handshake line", "real", line, "sent", out)
		if _, err := realStdout.WriteString(out + "\n"); err != nil {
			logger.Error("writing the handshake line", "error", err)
		}
		if exitAfter >= 0 {
			time.Sleep(time.Duration(exitAfter) * time.Millisecond)
			logger.Info("exiting after the handshake as told", "code", exitCode)
			os.Exit(exitCode)
		}
	}()
}

// serveDebug is the reattach mode described in the package comment.
func serveDebug(version int, sets map[int]plugin.PluginSet, serverFunc func([]grpc.ServerOption) *grpc.Server) int {
	dir, err := os.MkdirTemp("", "goplugin-debug")
	if err != nil {
		fmt.Fprintf(os.Stderr, "goplugin: %s\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "plugin.sock")
	lis, err := net.Listen("unix", path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "goplugin: %s\n", err)
		return 1
	}
	server := &plugin.GRPCServer{
		Plugins: sets[version],
		Server:  serverFunc,
		DoneCh:  make(chan struct{}),
	}
	if err := server.Init(); err != nil {
		fmt.Fprintf(os.Stderr, "goplugin: %s\n", err)
		return 1
	}
	line, _ := json.Marshal(map[string]interface{}{
		"Protocol":        "grpc",
		"ProtocolVersion": version,
		"Pid":             os.Getpid(),
		"Test":            true,
		"Addr":            map[string]string{"Network": "unix", "String": path},
	})
	os.Stdout.Write(append(line, '\n'))

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go server.Serve(lis)
	select {
	case <-server.DoneCh:
		logger.Debug("debug server stopped by Shutdown")
	case sig := <-sigs:
		logger.Debug("debug server stopped by signal", "signal", sig.String())
		server.Stop()
	}
	return 0
}

// ---- conformance.v1 ----

type v1Server struct {
	conformancev1.UnimplementedConformanceServer
	version int32
}

func (s *v1Server) Echo(_ context.Context, req *conformancev1.EchoRequest) (*conformancev1.EchoReply, error) {
	logger.Debug("Echo", "text_len", len(req.Text), "payload_len", len(req.Payload))
	return &conformancev1.EchoReply{Text: req.Text, Payload: req.Payload, Version: s.version}, nil
}

func (s *v1Server) Count(req *conformancev1.CountRequest, stream conformancev1.Conformance_CountServer) error {
	logger.Debug("Count", "n", req.N, "payload_size", req.PayloadSize)
	if req.N < 0 || req.PayloadSize < 0 {
		return status.Errorf(codes.InvalidArgument, "n and payload_size must be >= 0, got %d and %d", req.N, req.PayloadSize)
	}
	filler := []byte(strings.Repeat("x", int(req.PayloadSize)))
	for i := int32(1); i <= req.N; i++ {
		if err := stream.Send(&conformancev1.CountReply{I: i, Payload: filler}); err != nil {
			return err
		}
	}
	return nil
}

func (s *v1Server) Sum(stream conformancev1.Conformance_SumServer) error {
	var total int64
	var count int32
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			logger.Debug("Sum", "total", total, "count", count)
			return stream.SendAndClose(&conformancev1.SumReply{Total: total, Count: count})
		}
		if err != nil {
			return err
		}
		total += req.Value
		count++
	}
}

func (s *v1Server) Chat(stream conformancev1.Conformance_ChatServer) error {
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		logger.Debug("Chat", "text", msg.Text)
		if err := stream.Send(&conformancev1.ChatMessage{Text: msg.Text}); err != nil {
			return err
		}
	}
}

func (s *v1Server) Info(_ context.Context, req *conformancev1.InfoRequest) (*conformancev1.InfoReply, error) {
	env := map[string]string{}
	for _, name := range req.Env {
		if v, ok := os.LookupEnv(name); ok {
			env[name] = v
		}
	}
	logger.Debug("Info", "env", req.Env)
	return &conformancev1.InfoReply{
		Pid:            int32(os.Getpid()),
		Version:        s.version,
		Env:            env,
		Implementation: "go",
	}, nil
}

// ---- conformance.v2 ----

type v2Server struct {
	conformancev2.UnimplementedConformanceServer
}

func (s *v2Server) Echo(_ context.Context, req *conformancev2.EchoRequest) (*conformancev2.EchoReply, error) {
	logger.Debug("Echo (v2)", "text_len", len(req.Text))
	return &conformancev2.EchoReply{Text: strings.ToUpper(req.Text), Version: 2}, nil
}
