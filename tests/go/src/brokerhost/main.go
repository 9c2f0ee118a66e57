// Command brokerhost is a go-plugin 1.0.1 host that uses the GRPCBroker both ways with the
// plugin of tests/broker/broker_plugin.py (services in tests/protos/brokertest). Built by
// tests/gopeers.py's build_go_program for tests/broker/test_go_host_broker.py.
//
//	brokerhost [-automtls=false] -- PLUGIN_ARGV...
//
// Steps, each reported as one JSON line on stdout ("event" first):
//
//	{"event":"started","pid":P,"automtls":B}
//	{"event":"plugin_dials_host","id":N,"reply":S,"ms":F}   host AcceptAndServe(NextId()),
//	    the plugin dials it (CallHost) and calls its Echo; reply is the plugin's answer
//	    "<echo reply> <plugin's tls> <plugin's dial-to-reply ms>"
//	{"event":"host_dials_plugin","id":N,"offer":S,"reply":S,"tls":S,"ms":F}   the plugin
//	    accepts (Offer), the host Dials the id and calls Echo; tls is what the host saw
//	{"event":"error","stage":S,"error":S}
//	{"event":"killed","graceful":B,"ms":F}
//
// Exit status 0 without error events, 1 with.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	brokertestv1 "brokertest/v1"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

var handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "BROKERTEST_PLUGIN",
	MagicCookieValue: "broker",
}

// Dispensed is what Dispense("control") returns: the Control client and the broker.
type Dispensed struct {
	Control brokertestv1.ControlClient
	Broker  *plugin.GRPCBroker
}

type controlPlugin struct{ plugin.NetRPCUnsupportedPlugin }

func (controlPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return fmt.Errorf("brokerhost is a host")
}

func (controlPlugin) GRPCClient(_ context.Context, b *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return &Dispensed{Control: brokertestv1.NewControlClient(c), Broker: b}, nil
}

type echoServer struct {
	brokertestv1.UnimplementedEchoServer
	prefix string
}

func (e echoServer) Echo(_ context.Context, in *brokertestv1.Text) (*brokertestv1.Text, error) {
	return &brokertestv1.Text{Value: e.prefix + in.Value}, nil
}

var (
	failed  bool
	outMu   sync.Mutex
	hostLog syncBuffer
)

// syncBuffer is the host's log, kept to see whether Kill had to SIGKILL the plugin.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func emit(name string, fields map[string]interface{}) {
	outMu.Lock()
	defer outMu.Unlock()
	var rest bytes.Buffer
	enc := json.NewEncoder(&rest)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(fields)
	body := bytes.TrimSpace(rest.Bytes())
	if len(body) > 2 {
		fmt.Printf("{\"event\":%q,%s\n", name, body[1:])
	} else {
		fmt.Printf("{\"event\":%q}\n", name)
	}
	if name == "error" {
		failed = true
	}
}

func ms(since time.Time) float64 { return float64(time.Since(since).Microseconds()) / 1000 }

func main() {
	autoMTLS := flag.Bool("automtls", true, "AutoMTLS")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: brokerhost [-automtls=false] -- PLUGIN_ARGV...")
		os.Exit(2)
	}
	argv := flag.Args()
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  handshake,
		Plugins:          map[string]plugin.Plugin{"control": controlPlugin{}},
		Cmd:              exec.Command(argv[0], argv[1:]...),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         *autoMTLS,
		Logger:           hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: io.MultiWriter(os.Stderr, &hostLog)}),
	})
	watchdog := time.AfterFunc(60*time.Second, func() {
		emit("error", map[string]interface{}{"stage": "deadline", "error": "60 s passed"})
		client.Kill()
		os.Exit(2)
	})
	defer watchdog.Stop()
	run(client, *autoMTLS)
	killed := time.Now()
	client.Kill()
	graceful := !strings.Contains(hostLog.String(), "plugin failed to exit gracefully")
	emit("killed", map[string]interface{}{"ms": ms(killed), "graceful": graceful})
	if failed {
		os.Exit(1)
	}
}

func run(client *plugin.Client, autoMTLS bool) {
	rpc, err := client.Client()
	if err != nil {
		emit("error", map[string]interface{}{"stage": "start", "error": err.Error()})
		return
	}
	raw, err := rpc.Dispense("control")
	if err != nil {
		emit("error", map[string]interface{}{"stage": "dispense", "error": err.Error()})
		return
	}
	d := raw.(*Dispensed)
	emit("started", map[string]interface{}{"pid": client.ReattachConfig().Pid, "automtls": autoMTLS})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// 1. The host serves Echo through the broker; the plugin dials it mid-call.
	id := d.Broker.NextId()
	go d.Broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(opts...)
		brokertestv1.RegisterEchoServer(s, echoServer{prefix: "go:"})
		return s
	})
	started := time.Now()
	reply, err := d.Control.CallHost(ctx, &brokertestv1.Text{Value: fmt.Sprintf("%d hello", id)})
	if err != nil {
		emit("error", map[string]interface{}{"stage": "plugin_dials_host", "error": err.Error()})
	} else {
		emit("plugin_dials_host", map[string]interface{}{"id": id, "reply": reply.Value, "ms": ms(started)})
	}

	// 2. The plugin serves Echo through the broker; the host dials it.
	started = time.Now()
	offer, err := d.Control.Offer(ctx, &brokertestv1.Text{Value: "py:"})
	if err != nil {
		emit("error", map[string]interface{}{"stage": "offer", "error": err.Error()})
		return
	}
	fields := strings.Fields(offer.Value)
	pid, err := strconv.ParseUint(fields[0], 10, 32)
	if err != nil {
		emit("error", map[string]interface{}{"stage": "offer", "error": err.Error()})
		return
	}
	conn, err := d.Broker.Dial(uint32(pid))
	if err != nil {
		emit("error", map[string]interface{}{"stage": "dial", "error": err.Error()})
		return
	}
	defer conn.Close()
	var p peer.Peer
	echoed, err := brokertestv1.NewEchoClient(conn).Echo(ctx, &brokertestv1.Text{Value: "hi"}, grpc.Peer(&p))
	if err != nil {
		emit("error", map[string]interface{}{"stage": "host_dials_plugin", "error": err.Error()})
		return
	}
	emit("host_dials_plugin", map[string]interface{}{
		"id": pid, "offer": offer.Value, "reply": echoed.Value, "tls": tlsOf(&p), "ms": ms(started),
	})
}

func tlsOf(p *peer.Peer) string {
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return "off"
	}
	version := map[uint16]string{tls.VersionTLS12: "1.2", tls.VersionTLS13: "1.3"}[info.State.Version]
	name := ""
	if len(info.State.PeerCertificates) > 0 {
		name = info.State.PeerCertificates[0].Subject.CommonName
	}
	return fmt.Sprintf("TLS %s %s", version, name)
}
