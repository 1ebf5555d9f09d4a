package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recstream/recstream/cmd/recstream/internal/config"
)

// TestConfigCheckMasksSecrets gives every kind of secret by every route
// (the YAML file, the environment, a *_file) and checks `config check`
// prints none of them, yet shows which are set.
func TestConfigCheckMasksSecrets(t *testing.T) {
	dir := t.TempDir()
	const (
		chPassword   = "ch-pass-in-yaml-41"
		saslPassword = "sasl-pass-from-env-42"
		keyPassword  = "tls-key-pass-from-file-43"
	)
	keyFile := filepath.Join(dir, "key-password")
	if err := os.WriteFile(keyFile, []byte(keyPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "recstream.yaml")
	yaml := `kafka:
  brokers: [127.0.0.1:9092]
  tls:
    enabled: true
    cert_file: client.pem
    key_file: client-key.pem
    key_password_file: ` + keyFile + `
  sasl:
    mechanism: SCRAM-SHA-512
    username: recstream
scorer:
  model_dir: models/v1
clickhouse:
  username: recstream
  password: ` + chPassword + "\n"
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RECSTREAM_KAFKA_SASL_PASSWORD", saslPassword)
	out, err := runCLI(t, "config", "check", cfgFile)
	if err != nil {
		t.Fatalf("config check: %v\n%s", err, out)
	}
	for _, s := range []string{chPassword, saslPassword, keyPassword} {
		if strings.Contains(out, s) {
			t.Errorf("config check printed the secret %q:\n%s", s, out)
		}
	}
	if n := strings.Count(out, config.Mask); n != 3 {
		t.Errorf("config check shows %d masked secrets, want 3:\n%s", n, out)
	}
	for _, want := range []string{"username: recstream", "key_password_file: " + keyFile, "mechanism: SCRAM-SHA-512"} {
		if !strings.Contains(out, want) {
			t.Errorf("config check output lacks %q:\n%s", want, out)
		}
	}

	// An error names the field, never the value.
	t.Setenv("RECSTREAM_CLICKHOUSE_PASSWORD_FILE", keyFile)
	out, err = runCLI(t, "config", "check", cfgFile)
	if err == nil || !strings.Contains(err.Error(), "clickhouse.password_file") {
		t.Fatalf("both password and password_file: err %v", err)
	}
	if strings.Contains(err.Error()+out, chPassword) || strings.Contains(err.Error()+out, keyPassword) {
		t.Errorf("the error shows a secret: %v %s", err, out)
	}
}

func TestConfigEnvMarksSecrets(t *testing.T) {
	out, err := runCLI(t, "config", "env")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		secret := strings.Contains(line, "(secret")
		want := f[1] == "clickhouse.password" || f[1] == "kafka.sasl.password" || strings.HasSuffix(f[1], "tls.key_password")
		if secret != want {
			t.Errorf("line %q: marked secret %v, want %v", line, secret, want)
		}
	}
	for _, want := range []string{"RECSTREAM_METRICS_LISTEN", "RECSTREAM_KAFKA_SASL_MECHANISM", "RECSTREAM_KAFKA_TLS_CA_FILE",
		"RECSTREAM_CLICKHOUSE_PASSWORD_FILE", "RECSTREAM_CLICKHOUSE_TLS_ENABLED"} {
		if !strings.Contains(out, want+" ") {
			t.Errorf("config env does not list %s", want)
		}
	}
}
