package kafkaauth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recstream/recstream/cmd/recstream/internal/kafkaauth/authtest"
	"github.com/recstream/recstream/cmd/recstream/internal/tlsconfig"
)

const (
	testUser     = "recstream-svc"
	testPassword = "pw-7Hq!s3cr3t-not-in-logs"
	testTopic    = "auth.test"
)

// startBroker starts an in-process broker that requires SASL with the
// given superuser, and TLS when server is not nil.
func startBroker(t *testing.T, mechanism string, server *authtest.Certs) []string {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(2, testTopic),
		kfake.EnableSASL(), kfake.Superuser(mechanism, testUser, testPassword)}
	if server != nil {
		opts = append(opts, kfake.TLS(server.Server))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// useAll exercises every client kind an Auth builds: the kafka-go Dialer
// (Check, and a leader connection), the kafka-go Transport (a Writer) and
// the franz-go options (a consumer reading back what was written).
func useAll(t *testing.T, a *Auth, brokers []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Check(ctx, brokers); err != nil {
		t.Fatalf("Check: %v", err)
	}
	conn, err := a.Dialer(0).DialLeader(ctx, "tcp", brokers[0], testTopic, 0)
	if err != nil {
		t.Fatalf("dial leader: %v", err)
	}
	if _, err := conn.ReadLastOffset(); err != nil {
		t.Fatalf("read last offset through the dialer: %v", err)
	}
	conn.Close()

	// RequireAll: kafka-go's zero value is RequireNone, which returns before
	// the broker has appended the record and makes the read below racy.
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: testTopic, Transport: a.Transport(0),
		BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("v")}); err != nil {
		t.Fatalf("write through the transport: %v", err)
	}
	w.Close()

	cl, err := kgo.NewClient(append(a.KgoOptions(), kgo.SeedBrokers(brokers...))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, testTopic)
	if err != nil {
		t.Fatalf("franz-go list offsets: %v", err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total != 1 {
		t.Fatalf("franz-go sees %d records, want the 1 written through kafka-go", total)
	}
}

func TestEveryMechanismConnectsEveryClient(t *testing.T) {
	for _, mech := range []string{MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512} {
		t.Run(mech, func(t *testing.T) {
			brokers := startBroker(t, mech, nil)
			a, err := New(Config{SASL: SASLConfig{Mechanism: strings.ToLower(mech), Username: testUser, Password: testPassword}})
			if err != nil {
				t.Fatal(err)
			}
			if !a.PlaintextSASL() {
				t.Error("PlaintextSASL() = false for SASL without TLS")
			}
			useAll(t, a, brokers)
		})
	}
}

func TestTLSWithClientCertificateAndSCRAM(t *testing.T) {
	const keyPassword = "key-pass-Zx9-never-logged"
	certs, err := authtest.Write(t.TempDir(), keyPassword)
	if err != nil {
		t.Fatal(err)
	}
	brokers := startBroker(t, MechanismSCRAMSHA512, certs)
	cfg := Config{
		TLS: tlsconfig.Config{Enabled: true, CAFile: certs.CAFile, CertFile: certs.ClientCertFile,
			KeyFile: certs.ClientKeyFile, KeyPassword: keyPassword},
		SASL: SASLConfig{Mechanism: MechanismSCRAMSHA512, Username: testUser, Password: testPassword},
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a.PlaintextSASL() {
		t.Error("PlaintextSASL() = true with TLS")
	}
	if s := a.String(); !strings.Contains(s, "TLS") || !strings.Contains(s, testUser) || strings.Contains(s, testPassword) {
		t.Errorf("String() = %q: want TLS and the user, never the password", s)
	}
	useAll(t, a, brokers)
}

// TestStartUpErrorsNameTheSetting checks that every kind of misconfiguration
// fails Check (or New) with a message that says which setting to fix, and
// that no message carries a secret.
func TestStartUpErrorsNameTheSetting(t *testing.T) {
	const keyPassword = "key-pass-Zx9-never-logged"
	certs, err := authtest.Write(t.TempDir(), keyPassword)
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := authtest.Write(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	saslBroker := startBroker(t, MechanismSCRAMSHA256, nil)
	tlsBroker := startBroker(t, MechanismSCRAMSHA256, certs)
	good := SASLConfig{Mechanism: MechanismSCRAMSHA256, Username: testUser, Password: testPassword}
	tests := []struct {
		name    string
		cfg     Config
		brokers []string
		want    string // in New's error, or else in Check's
	}{
		{"wrong password", Config{SASL: SASLConfig{Mechanism: MechanismSCRAMSHA256, Username: testUser, Password: "wrong-" + testPassword}},
			saslBroker, "check kafka.sasl.username and the password"},
		{"unknown user", Config{SASL: SASLConfig{Mechanism: MechanismSCRAMSHA256, Username: "nobody", Password: testPassword}},
			saslBroker, `user "nobody"`},
		{"mechanism the broker lacks", Config{SASL: SASLConfig{Mechanism: MechanismPlain, Username: testUser, Password: testPassword}},
			saslBroker, "kafka.sasl"},
		{"no SASL against a SASL broker", Config{}, saslBroker, "kafka.sasl"},
		{"untrusted CA", Config{TLS: tlsconfig.Config{Enabled: true, CAFile: otherCA.CAFile}, SASL: good}, tlsBroker, "kafka.tls.ca_file"},
		{"TLS against a plaintext broker", Config{TLS: tlsconfig.Config{Enabled: true, CAFile: certs.CAFile}, SASL: good}, saslBroker, "kafka.tls"},
		{"missing CA file", Config{TLS: tlsconfig.Config{Enabled: true, CAFile: "/nonexistent/ca.pem"}}, nil, "tls.ca_file"},
		{"wrong key password", Config{TLS: tlsconfig.Config{Enabled: true, CertFile: certs.ClientCertFile, KeyFile: certs.ClientKeyFile,
			KeyPassword: "not-" + keyPassword}}, nil, "wrong key_password"},
		{"encrypted key without password", Config{TLS: tlsconfig.Config{Enabled: true, CertFile: certs.ClientCertFile, KeyFile: certs.ClientKeyFile}},
			nil, "set key_password"},
		{"unknown mechanism", Config{SASL: SASLConfig{Mechanism: "GSSAPI", Username: "u", Password: "p"}}, nil, "sasl.mechanism"},
		{"mechanism without password", Config{SASL: SASLConfig{Mechanism: MechanismPlain, Username: "u"}}, nil, "sasl.password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := New(tt.cfg)
			if err == nil {
				if tt.brokers == nil {
					t.Fatalf("New accepted %+v", tt.cfg)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				err = a.Check(ctx, tt.brokers)
				if err == nil {
					t.Fatal("Check succeeded")
				}
				// A plaintext client's TLS handshake timing out may be a
				// broker still starting: only that case is not final.
				if rejected := errors.Is(err, ErrRejected); rejected != (tt.name != "TLS against a plaintext broker") {
					t.Errorf("errors.Is(err, ErrRejected) = %v for %v", rejected, err)
				}
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Fatalf("error %q does not say %q", msg, tt.want)
			}
			for _, secret := range []string{testPassword, keyPassword} {
				if strings.Contains(msg, secret) {
					t.Fatalf("error %q holds a secret", msg)
				}
			}
		})
	}
}

func TestNilAuthIsPlaintext(t *testing.T) {
	a, err := New(Config{})
	if err != nil || a != nil {
		t.Fatalf("New(zero) = %v, %v; want nil, nil", a, err)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, testTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Check(ctx, c.ListenAddrs()); err != nil {
		t.Fatal(err)
	}
	if d := a.Dialer(0); d.TLS != nil || d.SASLMechanism != nil {
		t.Error("nil Auth built a secured dialer")
	}
}
