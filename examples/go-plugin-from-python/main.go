// Command kvplugin is the KV plugin of ../kv-go-host/kv.proto written in Go, the way any
// go-plugin plugin is: plugin.Serve with a GRPCPlugin that registers the protoc-gen-go-grpc
// server. A Python host launches it through rpcplugin (see host.py).
//
// Like every go-plugin plugin it refuses to run unless its host set the magic cookie.
package main

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"

	kvv1 "example.com/kv/v1"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Handshake is the one in kv.proto's rpcplugin option: app protocol version 1 (the proto
// package is kv.v1) and the magic cookie a host must set.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "KV_PLUGIN_COOKIE",
	MagicCookieValue: "kv-5e1a9c7b",
}

// Store implements kv.v1.KV in memory.
type Store struct {
	kvv1.UnimplementedKVServer
	mu   sync.Mutex
	data map[string][]byte
}

// Get returns the value stored under key; NotFound if there is none.
func (s *Store) Get(_ context.Context, req *kvv1.GetRequest) (*kvv1.GetResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	value, ok := s.data[req.Key]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no value under %q", req.Key)
	}
	return &kvv1.GetResponse{Value: value}, nil
}

// Put stores value under key, replacing any value there.
func (s *Store) Put(_ context.Context, req *kvv1.PutRequest) (*kvv1.PutResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[req.Key] = req.Value
	return &kvv1.PutResponse{}, nil
}

// List streams the entries whose key starts with prefix, in key order.
func (s *Store) List(req *kvv1.ListRequest, stream kvv1.KV_ListServer) error {
	s.mu.Lock()
	var entries []*kvv1.Entry
	for key, value := range s.data {
		if strings.HasPrefix(key, req.Prefix) {
			entries = append(entries, &kvv1.Entry{Key: key, Value: value})
		}
	}
	s.mu.Unlock()
	sort.Slice(entries, func(i, j int) bool { return entries[i].Key < entries[j].Key })
	for _, entry := range entries {
		if err := stream.Send(entry); err != nil {
			return err
		}
	}
	return nil
}

// KVPlugin is the plugin's half of a go-plugin GRPCPlugin: it serves Impl.
type KVPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl kvv1.KVServer
}

// GRPCServer registers the KV service on the server go-plugin made (with TLS when the host
// asked for AutoMTLS, next to go-plugin's health, broker and controller services).
func (p *KVPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	kvv1.RegisterKVServer(s, p.Impl)
	return nil
}

// GRPCClient is the host side, which this program is not.
func (p *KVPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (interface{}, error) {
	return nil, errors.New("kvplugin is a plugin: it does not host KV")
}

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         plugin.PluginSet{"kv": &KVPlugin{Impl: &Store{data: map[string][]byte{}}}},
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}
