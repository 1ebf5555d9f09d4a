// Package tlsconfig is the TLS configuration of recstream's clients (Kafka,
// ClickHouse): one YAML shape, one loader of CA, certificate and key files,
// with encrypted keys and secrets kept out of errors and logs.
package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// Config is a client's TLS: kafka.tls, clickhouse.tls. The zero value
// disables TLS.
type Config struct {
	// Enabled turns TLS on. The other fields are ignored when it is false.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM file of the certificate authorities that sign the
	// servers' certificates. Empty means the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client's PEM certificate and private key,
	// for servers that authenticate clients by certificate (mutual TLS).
	// Both or neither. Empty means no client certificate.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// KeyPassword decrypts KeyFile when it is an encrypted PEM block
	// ("Proc-Type: 4,ENCRYPTED"). A secret: give it through the environment
	// (RECSTREAM_<SECTION>_TLS_KEY_PASSWORD) or KeyPasswordFile, never in the
	// file; it is masked by `recstream config check` and never logged.
	KeyPassword string `yaml:"key_password" secret:"true"`
	// KeyPasswordFile names a file holding KeyPassword (a trailing newline
	// is dropped), read at start-up: the shape of Docker and Kubernetes
	// secrets. Set at most one of the two.
	KeyPasswordFile string `yaml:"key_password_file" secretfile:"KeyPassword"`
	// ServerName is the name checked against the servers' certificates.
	// Empty means the host of each server address.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any server certificate. For tests only: it
	// leaves the connection open to interception.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Validate checks the TLS fields.
func (c Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("cert_file: cert_file and key_file go together: set both or neither")
	}
	if c.KeyPassword != "" && c.KeyFile == "" {
		return errors.New("key_password: set without key_file")
	}
	return nil
}

// Build returns the client TLS configuration c describes, or nil when TLS is
// disabled. It reads the CA, certificate and key files; errors name the
// field whose file is at fault, never a secret.
func (c Config) Build() (*tls.Config, error) {
	if !c.Enabled {
		return nil, nil
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // documented as for tests only
	}
	if c.CAFile != "" {
		raw, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(raw) {
			return nil, fmt.Errorf("ca_file: %s holds no PEM certificate", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := c.clientCertificate()
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// clientCertificate loads CertFile and KeyFile, decrypting the key with
// KeyPassword when it is an encrypted PEM block.
func (c Config) clientCertificate() (tls.Certificate, error) {
	certPEM, err := os.ReadFile(c.CertFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("cert_file: %w", err)
	}
	keyPEM, err := os.ReadFile(c.KeyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("key_file: %w", err)
	}
	keyPEM, err = decryptKey(keyPEM, c.KeyPassword)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("key_file %s: %w", c.KeyFile, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("cert_file and key_file: %w", err)
	}
	return cert, nil
}

// decryptKey returns keyPEM with its first private key block decrypted
// when it is a legacy encrypted PEM block; other keys are returned as they
// are. The error never holds the password.
func decryptKey(keyPEM []byte, password string) ([]byte, error) {
	rest := keyPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if password != "" {
				return nil, errors.New("key_password is set but the key is not encrypted")
			}
			return keyPEM, nil
		}
		if block.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, errors.New("PKCS#8 encrypted keys are not supported: convert the key with " +
				"`openssl pkcs8 -in key.pem -out key-plain.pem` and protect the file, or use a legacy encrypted PEM key")
		}
		//nolint:staticcheck // legacy PEM encryption is what operators' keys use; it is the only one the standard library reads
		if !x509.IsEncryptedPEMBlock(block) {
			continue
		}
		if password == "" {
			return nil, errors.New("the key is encrypted: set key_password or key_password_file")
		}
		//nolint:staticcheck // see above
		der, err := x509.DecryptPEMBlock(block, []byte(password))
		if err != nil {
			return nil, errors.New("decrypt the key: wrong key_password or damaged key")
		}
		return pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: der}), nil
	}
}
