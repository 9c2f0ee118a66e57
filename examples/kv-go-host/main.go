// Command kvhost is a go-plugin host for the KV plugin of kv.proto, written the way any Go
// program hosts go-plugin plugins. It launches the plugin command given after "--" with
// AutoMTLS, stores and reads a few entries, kills the plugin and prints what happened.
//
//	kvhost [-automtls=false] [-v] -- PLUGIN_COMMAND...
//	kvhost -- python -m kv
//
// The exit status is 0 when every step went as expected, 1 otherwise.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	kvv1 "example.com/kv/v1"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Handshake is the one in kv.proto's rpcplugin option: app protocol version 1 (the proto
// package is kv.v1) and the magic cookie the plugin checks before it serves.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "KV_PLUGIN_COOKIE",
	MagicCookieValue: "kv-5e1a9c7b",
}

// KVPlugin is the host's half of a go-plugin GRPCPlugin: Dispense("kv") hands back a
// kvv1.KVClient on the plugin's connection. The plugin side lives in Python.
type KVPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

// GRPCServer is the plugin side, which this program is not.
func (KVPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("kvhost is a host: it does not serve KV")
}

// GRPCClient wraps the connection go-plugin dialled in the generated client.
func (KVPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return kvv1.NewKVClient(c), nil
}

func main() {
	autoMTLS := flag.Bool("automtls", true, "mutual TLS with a certificate made for this run (AutoMTLS)")
	verbose := flag.Bool("v", false, "print go-plugin's debug log on stderr")
	timeout := flag.Duration("timeout", time.Minute, "give up (and kill the plugin) after this long")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: kvhost [-automtls=false] [-v] -- PLUGIN_COMMAND...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	level := hclog.Warn
	if *verbose {
		level = hclog.Debug
	}
	os.Exit(run(flag.Args(), *autoMTLS, level, *timeout))
}

func run(argv []string, autoMTLS bool, level hclog.Level, timeout time.Duration) int {
	cmd := exec.Command(argv[0], argv[1:]...)
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          plugin.PluginSet{"kv": KVPlugin{}},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         autoMTLS,
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "kvhost", Level: level, Output: os.Stderr}),
	})
	watchdog := time.AfterFunc(timeout, func() {
		fmt.Printf("error: gave up after %s\n", timeout)
		client.Kill()
		os.Exit(1)
	})
	defer watchdog.Stop()
	defer client.Kill() // whatever happens, do not leave the plugin behind

	rpcClient, err := client.Client() // starts the plugin, reads its handshake, dials it
	if err != nil {
		fmt.Printf("error: launching %s: %v\n", strings.Join(argv, " "), err)
		return 1
	}
	raw, err := rpcClient.Dispense("kv")
	if err != nil {
		fmt.Printf("error: dispense: %v\n", err)
		return 1
	}
	kv := raw.(kvv1.KVClient)
	addr := client.ReattachConfig().Addr
	fmt.Printf("launched: %s (pid %d), app protocol version %d, %s %s\n",
		strings.Join(argv, " "), cmd.Process.Pid, client.NegotiatedVersion(), addr.Network(), addr)

	ok := calls(kv)

	started := time.Now()
	client.Kill() // GRPCController.Shutdown, then up to 2 s for the process to exit, else SIGKILL
	// Kill returns once go-plugin has reaped the process, so its exit status is known.
	fmt.Printf("killed: %s after %d ms\n", cmd.ProcessState, time.Since(started).Milliseconds())
	if !cmd.ProcessState.Success() {
		return 1
	}
	if !ok {
		return 1
	}
	return 0
}

// calls makes the KV calls and prints each result; false if one went wrong.
func calls(kv kvv1.KVClient) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	entries := [][2]string{{"fruit/apple", "red"}, {"fruit/banana", "yellow"}, {"veg/kale", "green"}}
	var p peer.Peer
	for _, e := range entries {
		if _, err := kv.Put(ctx, &kvv1.PutRequest{Key: e[0], Value: []byte(e[1])}, grpc.Peer(&p)); err != nil {
			fmt.Printf("error: Put %s: %v\n", e[0], err)
			return false
		}
		fmt.Printf("Put %s = %s\n", e[0], e[1])
	}
	fmt.Printf("TLS: %s\n", describeTLS(p.AuthInfo))

	got, err := kv.Get(ctx, &kvv1.GetRequest{Key: "fruit/apple"})
	if err != nil {
		fmt.Printf("error: Get fruit/apple: %v\n", err)
		return false
	}
	fmt.Printf("Get fruit/apple -> %s\n", got.Value)

	// A status the Python servicer aborts with arrives as a gRPC status code.
	_, err = kv.Get(ctx, &kvv1.GetRequest{Key: "fruit/cherry"})
	if status.Code(err) != codes.NotFound {
		fmt.Printf("error: Get fruit/cherry: want NotFound, got %v\n", err)
		return false
	}
	fmt.Printf("Get fruit/cherry -> %s: %s\n", status.Code(err), status.Convert(err).Message())

	stream, err := kv.List(ctx, &kvv1.ListRequest{Prefix: "fruit/"})
	if err != nil {
		fmt.Printf("error: List: %v\n", err)
		return false
	}
	var listed []string
	for {
		entry, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Printf("error: List: %v\n", err)
			return false
		}
		listed = append(listed, fmt.Sprintf("%s=%s", entry.Key, entry.Value))
	}
	fmt.Printf("List fruit/ -> %s\n", strings.Join(listed, " "))
	return true
}

// describeTLS says what protected a call, from the peer info gRPC recorded for it.
func describeTLS(info credentials.AuthInfo) string {
	tlsInfo, ok := info.(credentials.TLSInfo)
	if !ok {
		return "off"
	}
	state := tlsInfo.State
	versions := map[uint16]string{tls.VersionTLS12: "TLS 1.2", tls.VersionTLS13: "TLS 1.3"}
	version, known := versions[state.Version]
	if !known {
		version = fmt.Sprintf("TLS version %#x", state.Version)
	}
	subject := "no certificate"
	if len(state.PeerCertificates) > 0 {
		subject = fmt.Sprintf("certificate %q", state.PeerCertificates[0].Subject.CommonName)
	}
	return fmt.Sprintf("on, %s, %s, plugin %s", version, tls.CipherSuiteName(state.CipherSuite), subject)
}
