package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/recstream/recstream/cmd/recstream/internal/kafkaauth"
	"github.com/recstream/recstream/cmd/recstream/internal/kafkaauth/authtest"
)

// Secrets of the secured stack. Distinctive, so that a leak into a log is
// found by a plain substring search.
const (
	secKafkaUser     = "recstream-svc"
	secKafkaPassword = "kafka-Pw-9f3!never-logged"
	secKeyPassword   = "tls-KeyPw-77c-never-logged"
	secCHUser        = "secure"
	secCHPassword    = "ch-Pw-5e1-never-logged"
)

// startSecureKafka is a kafkaStarter: an in-process broker that requires
// TLS and SCRAM-SHA-256, with the client's TLS material under dir.
func startSecureKafka(certs **authtest.Certs) kafkaStarter {
	return func(t *testing.T, s *stack, dir string, partitions int) {
		t.Helper()
		c, err := authtest.Write(dir, secKeyPassword)
		if err != nil {
			t.Fatal(err)
		}
		*certs = c
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(partitions),
			kfake.SeedTopics(int32(partitions), testInputTopic, testDLQTopic),
			kfake.TLS(c.Server), kfake.EnableSASL(), kfake.Superuser(kafkaauth.MechanismSCRAMSHA256, secKafkaUser, secKafkaPassword))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cluster.Close)
		s.addrs = cluster.ListenAddrs()
	}
}

// startSecureStack starts ClickHouse with a password-protected user and a
// broker that requires TLS and SASL, and configures s.cfg for them with
// every secret left out of the configuration itself: the TLS key password
// in a file named by the YAML, the others given to the process as the
// environment returned (a password in a variable, the ClickHouse password
// in a file).
func startSecureStack(t *testing.T) (*stack, []string) {
	t.Helper()
	var certs *authtest.Certs
	s := startStackOn(t, 4, startSecureKafka(&certs))
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// A ClickHouse user with a password (users.d, reloaded by the server).
	usersD := filepath.Join(s.ch.Dir(), "users.d")
	if err := os.MkdirAll(usersD, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(usersD, "recstream.xml"), []byte(`<?xml version="1.0"?>
<yandex><users><`+secCHUser+`><password>`+secCHPassword+`</password>
<networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></`+secCHUser+`></users></yandex>
`), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() bool {
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{s.ch.Addr()},
			Auth: clickhouse.Auth{Username: secCHUser, Password: secCHPassword}})
		if err != nil {
			return false
		}
		defer conn.Close()
		return conn.Ping(context.Background()) == nil
	})

	s.cfg.Kafka.TLS.Enabled = true
	s.cfg.Kafka.TLS.CAFile = certs.CAFile
	s.cfg.Kafka.TLS.CertFile = certs.ClientCertFile
	s.cfg.Kafka.TLS.KeyFile = certs.ClientKeyFile
	s.cfg.Kafka.TLS.KeyPasswordFile = write("tls-key-password", secKeyPassword+"\n")
	s.cfg.Kafka.SASL.Mechanism = kafkaauth.MechanismSCRAMSHA256
	s.cfg.Kafka.SASL.Username = secKafkaUser
	s.cfg.ClickHouse.Username = secCHUser
	env := []string{
		"RECSTREAM_KAFKA_SASL_PASSWORD=" + secKafkaPassword,
		"RECSTREAM_CLICKHOUSE_PASSWORD_FILE=" + write("ch-password", secCHPassword+"\n"),
	}
	// The test's own clients connect the same way.
	kc := s.cfg.Kafka
	kc.TLS.KeyPassword, kc.TLS.KeyPasswordFile, kc.SASL.Password = secKeyPassword, "", secKafkaPassword
	auth, err := kafkaauth.New(kc.Auth())
	if err != nil {
		t.Fatal(err)
	}
	s.clientOpts = auth.KgoOptions()
	return s, env
}

// runBinary starts the real binary with cfg's file and extra environment,
// logging JSON at debug level (the most it can say) into the returned
// buffer.
func runBinary(t *testing.T, bin, cfgPath string, env []string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	var out syncBuffer
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(append(os.Environ(), "RECSTREAM_LOG_FORMAT=json", "RECSTREAM_LOG_LEVEL=debug"), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() }) //nolint:errcheck // already exited on the normal path
	return cmd, &out
}

func assertNoSecrets(t *testing.T, what, out string) {
	t.Helper()
	for _, s := range []string{secKafkaPassword, secKeyPassword, secCHPassword} {
		if strings.Contains(out, s) {
			t.Errorf("%s holds the secret %q", what, s)
		}
	}
}

// TestSecuredStackWithSecretsNeverLogged runs the real binary against a
// broker that requires TLS and SCRAM-SHA-256 and a ClickHouse user with a
// password, every secret given through the environment or a file: the
// consumer, the dead-letter writer, topic creation and the output sink all
// connect, the whole input is processed, and the process's logs (JSON, at
// debug level) contain none of the secrets. Then wrong credentials stop
// start-up with an error that names the setting to fix, again without the
// secrets.
func TestSecuredStackWithSecretsNeverLogged(t *testing.T) {
	bin := buildBinary(t)
	s, env := startSecureStack(t)
	p := produce(t, s, 41, 4000, 0.03)
	cfgPath := writeConfig(t, s)
	raw, _ := os.ReadFile(cfgPath)
	assertNoSecrets(t, "the configuration file", string(raw))

	// The generator's producer connects through the same settings.
	const generated = 500
	gen := exec.Command(bin, "generate", "--config", cfgPath, "--events", strconv.Itoa(generated),
		"--malformed-rate", "-1", "--seed", "5", "--quiet")
	gen.Env = append(os.Environ(), env...)
	genOut, err := gen.CombinedOutput()
	if err != nil || !strings.Contains(string(genOut), fmt.Sprintf("produced %d events", generated)) {
		t.Fatalf("recstream generate --config: %v\n%s", err, genOut)
	}
	assertNoSecrets(t, "generate's output", string(genOut))
	p.total += generated
	p.byKind[""] += generated

	cmd, out := runBinary(t, bin, cfgPath, env)
	deadline := time.Now().Add(2 * time.Minute)
	for committedRecords(t, s) < int64(p.total) {
		if time.Now().After(deadline) {
			t.Fatalf("committed %d of %d records:\n%s", committedRecords(t, s), p.total, out.String())
		}
		if cmd.ProcessState != nil {
			t.Fatalf("recstream exited early:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("recstream run: %v\n%s", err, out.String())
	}
	logs := out.String()
	if !strings.Contains(logs, `"security":"TLS, SASL SCRAM-SHA-256 as \"`+secKafkaUser+`\""`) {
		t.Errorf("the logs do not say how Kafka was secured:\n%s", logs)
	}
	assertNoSecrets(t, "the logs", logs)
	assertCommittedToEnd(t, s)

	// Dead letters and recommendations went through the secured writers.
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{s.ch.Addr()},
		Auth: clickhouse.Auth{Database: s.cfg.ClickHouse.Database, Username: secCHUser, Password: secCHPassword}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var events uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM events FINAL").Scan(&events); err != nil {
		t.Fatal(err)
	}
	if events != uint64(p.byKind[""]) {
		t.Errorf("clickhouse holds %d events, want %d", events, p.byKind[""])
	}

	// Wrong credentials: start-up fails at once, naming the setting.
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"wrong kafka password", []string{"RECSTREAM_KAFKA_SASL_PASSWORD=not-" + secKafkaPassword, env[1]}, "check kafka.sasl.username and the password"},
		{"wrong kafka user", []string{"RECSTREAM_KAFKA_SASL_USERNAME=intruder", env[0], env[1]}, `refused SASL SCRAM-SHA-256 login of user "intruder"`},
		{"wrong clickhouse password", []string{env[0], "RECSTREAM_CLICKHOUSE_PASSWORD=not-" + secCHPassword}, "Wrong password for user " + secCHUser},
		{"no kafka password", []string{env[1]}, "kafka.sasl.password: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, out := runBinary(t, bin, cfgPath, tt.env)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				var exitErr *exec.ExitError
				if !errors.As(err, &exitErr) {
					t.Fatalf("exit = %v, want a failure\n%s", err, out.String())
				}
			case <-time.After(time.Minute):
				t.Fatalf("recstream did not stop within a minute:\n%s", out.String())
			}
			if i := strings.LastIndex(out.String(), "recstream: "); i >= 0 {
				t.Logf("%s", strings.TrimSpace(out.String()[i:]))
			}
			if !strings.Contains(out.String(), tt.want) {
				t.Errorf("the error does not say %q:\n%s", tt.want, out.String())
			}
			assertNoSecrets(t, "the output", out.String())
		})
	}
}

// syncBuffer is a bytes.Buffer safe for a child's two output streams and a
// reader.
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
