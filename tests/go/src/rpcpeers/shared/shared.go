// Package shared holds what the Go test host (gohost) and the Go test plugin
// (goplugin) agree on: the handshake defaults, the dispensed plugin name and the
// go-plugin 1.0.1 Plugin type that serves or dials the conformance services.
//
// Nothing here goes over the wire except the gRPC service paths registered by
// Register: go-plugin's "dispense" is purely host-side.
package shared

import (
	"context"
	"fmt"
	"net/rpc"

	conformancev1 "conformance/v1"
	conformancev2 "conformance/v2"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

const (
	// DefaultCookieKey and DefaultCookieValue are the magic cookie both
	// programs use unless told otherwise.
	DefaultCookieKey   = "RPCPLUGIN_CONFORMANCE"
	DefaultCookieValue = "conformance-v1"

	// PluginName is the key of the conformance plugin in every PluginSet.
	PluginName = "conformance"
)

// Stubs is what the host gets from Dispense: client stubs for both service
// versions on the one connection, plus the version whose PluginSet was
// dispensed. Either stub may be called whatever the version; a plugin that did
// not register that service answers Unimplemented.
type Stubs struct {
	Version int
	V1      conformancev1.ConformanceClient
	V2      conformancev2.ConformanceClient
	Conn    *grpc.ClientConn
}

// Plugin is a go-plugin GRPCPlugin for one app protocol version. On the host
// side only Version matters; on the plugin side Register installs the services
// that version serves (go-plugin calls GRPCServer only for the negotiated
// version's PluginSet, which is how the plugin learns that version).
type Plugin struct {
	Version  int
	Register func(version int, s *grpc.Server) error
}

var _ plugin.GRPCPlugin = (*Plugin)(nil)
var _ plugin.Plugin = (*Plugin)(nil)

// GRPCServer implements plugin.GRPCPlugin.
func (p *Plugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Register == nil {
		return fmt.Errorf("conformance plugin version %d has nothing to serve", p.Version)
	}
	return p.Register(p.Version, s)
}

// GRPCClient implements plugin.GRPCPlugin.
func (p *Plugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return &Stubs{
		Version: p.Version,
		V1:      conformancev1.NewConformanceClient(c),
		V2:      conformancev2.NewConformanceClient(c),
		Conn:    c,
	}, nil
}

// Server implements plugin.Plugin (net/rpc), which this plugin does not speak.
func (p *Plugin) Server(*plugin.MuxBroker) (interface{}, error) {
	return nil, fmt.Errorf("conformance plugin: net/rpc is not supported")
}

// Client implements plugin.Plugin (net/rpc), which this plugin does not speak.
func (p *Plugin) Client(*plugin.MuxBroker, *rpc.Client) (interface{}, error) {
	return nil, fmt.Errorf("conformance plugin: net/rpc is not supported")
}
