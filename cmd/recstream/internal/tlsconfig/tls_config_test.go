package tlsconfig_test

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recstream/recstream/cmd/recstream/internal/kafkaauth/authtest"
	"github.com/recstream/recstream/cmd/recstream/internal/tlsconfig"
)

// TestBuildConnects builds client configurations from files and completes
// real handshakes against a server that verifies client certificates.
func TestBuildConnects(t *testing.T) {
	const keyPassword = "k3y-pass"
	dir := t.TempDir()
	certs, err := authtest.Write(dir, keyPassword)
	if err != nil {
		t.Fatal(err)
	}
	server := certs.Server.Clone()
	server.ClientAuth = tls.RequireAndVerifyClientCert
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	pkcs8 := filepath.Join(dir, "pkcs8.pem")
	if err := os.WriteFile(pkcs8, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	good := tlsconfig.Config{Enabled: true, CAFile: certs.CAFile, CertFile: certs.ClientCertFile, KeyFile: certs.ClientKeyFile, KeyPassword: keyPassword}
	tests := []struct {
		name      string
		mutate    func(*tlsconfig.Config)
		buildErr  string // in Build's error
		handshake bool   // the handshake succeeds
	}{
		{"client certificate, encrypted key", func(*tlsconfig.Config) {}, "", true},
		{"no client certificate", func(c *tlsconfig.Config) { c.CertFile, c.KeyFile, c.KeyPassword = "", "", "" }, "", false},
		{"disabled", func(c *tlsconfig.Config) { c.Enabled = false }, "", false},
		{"cert without key", func(c *tlsconfig.Config) { c.KeyFile = "" }, "cert_file: cert_file and key_file go together", false},
		{"wrong key password", func(c *tlsconfig.Config) { c.KeyPassword = "nope" }, "wrong key_password", false},
		{"missing key password", func(c *tlsconfig.Config) { c.KeyPassword = "" }, "set key_password", false},
		{"password for a plain key", func(c *tlsconfig.Config) { c.KeyFile = certs.ServerKeyFile; c.CertFile = certs.ServerCertFile }, "not encrypted", false},
		{"PKCS#8 encrypted key", func(c *tlsconfig.Config) { c.KeyFile = pkcs8 }, "PKCS#8", false},
		{"CA file of no certificate", func(c *tlsconfig.Config) { c.CAFile = pkcs8 }, "ca_file", false},
		{"missing CA file", func(c *tlsconfig.Config) { c.CAFile = filepath.Join(dir, "none.pem") }, "ca_file", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mutate(&c)
			tc, err := c.Build()
			if tt.buildErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.buildErr) {
					t.Fatalf("Build error = %v, want one saying %q", err, tt.buildErr)
				}
				if strings.Contains(err.Error(), keyPassword) {
					t.Fatalf("error %q holds the key password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !c.Enabled {
				if tc != nil {
					t.Fatal("disabled TLS built a configuration")
				}
				return
			}
			conn, err := tls.DialWithDialer(&net.Dialer{}, "tcp", ln.Addr().String(), tc)
			if err == nil {
				// TLS 1.3 reports a refused client certificate on the first read.
				_, err = conn.Read(make([]byte, 1))
				if err != nil && strings.Contains(err.Error(), "EOF") {
					err = nil
				}
				conn.Close()
			}
			if (err == nil) != tt.handshake {
				t.Fatalf("handshake error = %v, want success %v", err, tt.handshake)
			}
		})
	}
}
