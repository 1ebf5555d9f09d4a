package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const base = "kafka:\n  brokers: [a:9092]\nscorer:\n  model_dir: m\n"

func secretFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSecretsComeFromEnvOrFiles(t *testing.T) {
	chFile := secretFile(t, "ch-from-file\n")
	saslFile := secretFile(t, "sasl-from-file\r\n")
	keyFile := secretFile(t, "key-from-file")
	tests := []struct {
		name string
		yaml string
		env  []string
		err  string
	}{
		{"from env", base, []string{"RECSTREAM_CLICKHOUSE_PASSWORD=ch-from-env", "RECSTREAM_KAFKA_SASL_MECHANISM=PLAIN",
			"RECSTREAM_KAFKA_SASL_USERNAME=u", "RECSTREAM_KAFKA_SASL_PASSWORD=sasl-from-env"}, ""},
		{"from files", base + "clickhouse:\n  password_file: " + chFile + "\n", []string{"RECSTREAM_KAFKA_SASL_MECHANISM=SCRAM-SHA-512",
			"RECSTREAM_KAFKA_SASL_USERNAME=u", "RECSTREAM_KAFKA_SASL_PASSWORD_FILE=" + saslFile,
			"RECSTREAM_KAFKA_TLS_ENABLED=true", "RECSTREAM_KAFKA_TLS_CERT_FILE=c.pem", "RECSTREAM_KAFKA_TLS_KEY_FILE=k.pem",
			"RECSTREAM_KAFKA_TLS_KEY_PASSWORD_FILE=" + keyFile}, ""},
		{"both value and file", base, []string{"RECSTREAM_CLICKHOUSE_PASSWORD=x", "RECSTREAM_CLICKHOUSE_PASSWORD_FILE=" + chFile},
			"clickhouse.password_file: set either clickhouse.password or clickhouse.password_file"},
		{"missing file", base + "clickhouse:\n  password_file: /nonexistent/pw\n", nil, "clickhouse.password_file"},
		{"empty file", base, []string{"RECSTREAM_CLICKHOUSE_PASSWORD_FILE=" + secretFile(t, "\n")}, "is empty"},
		{"sasl without password", base, []string{"RECSTREAM_KAFKA_SASL_MECHANISM=PLAIN", "RECSTREAM_KAFKA_SASL_USERNAME=u"},
			"kafka.sasl.password: required"},
		{"unknown mechanism", base, []string{"RECSTREAM_KAFKA_SASL_MECHANISM=KERBEROS"}, "kafka.sasl.mechanism"},
	}
	want := map[string][]string{
		"from env":   {"ch-from-env", "sasl-from-env", ""},
		"from files": {"ch-from-file", "sasl-from-file", "key-from-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(writeFile(t, tt.yaml), tt.env)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Load error = %v, want one saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := []string{cfg.ClickHouse.Password, cfg.Kafka.SASL.Password, cfg.Kafka.TLS.KeyPassword}
			if !slices.Equal(got, want[tt.name]) {
				t.Fatalf("secrets = %q, want %q", got, want[tt.name])
			}
			if m := cfg.Kafka.SASL.Mechanism; m != strings.ToUpper(m) {
				t.Errorf("mechanism %q not normalised", m)
			}
		})
	}
}

// TestMaskedHidesEverySecret sets every secret field and checks the printed
// configuration shows none of them, but still shows that they are set.
func TestMaskedHidesEverySecret(t *testing.T) {
	paths := SecretPaths()
	for _, p := range []string{"clickhouse.password", "kafka.sasl.password", "kafka.tls.key_password", "clickhouse.tls.key_password"} {
		if !slices.Contains(paths, p) {
			t.Errorf("%s is not a secret field (secrets: %v)", p, paths)
		}
	}
	env := []string{"RECSTREAM_KAFKA_SASL_MECHANISM=SCRAM-SHA-256", "RECSTREAM_KAFKA_SASL_USERNAME=svc",
		"RECSTREAM_KAFKA_TLS_ENABLED=true", "RECSTREAM_KAFKA_TLS_CERT_FILE=c.pem", "RECSTREAM_KAFKA_TLS_KEY_FILE=k.pem",
		"RECSTREAM_CLICKHOUSE_TLS_ENABLED=true", "RECSTREAM_CLICKHOUSE_TLS_CERT_FILE=c.pem", "RECSTREAM_CLICKHOUSE_TLS_KEY_FILE=k.pem"}
	var secrets []string
	for i, p := range paths {
		secret := "s3cret-" + strings.ReplaceAll(p, ".", "-") + "-" + string(rune('a'+i))
		secrets = append(secrets, secret)
		env = append(env, "RECSTREAM_"+strings.ToUpper(strings.ReplaceAll(p, ".", "_"))+"="+secret)
	}
	cfg, err := Load(writeFile(t, base), env)
	if err != nil {
		t.Fatal(err)
	}
	if got := SecretValues(cfg); len(got) != len(secrets) {
		t.Fatalf("SecretValues = %d values, want %d", len(got), len(secrets))
	}
	out, err := yaml.Marshal(Masked(cfg))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if strings.Contains(string(out), s) {
			t.Errorf("masked output holds %q:\n%s", s, out)
		}
	}
	if n := strings.Count(string(out), Mask); n != len(secrets) {
		t.Errorf("masked output has %d masks, want %d:\n%s", n, len(secrets), out)
	}
	if cfg.ClickHouse.Password == Mask {
		t.Error("Masked changed the original configuration")
	}
	// An unset secret stays visibly empty.
	plain, err := Load(writeFile(t, base), nil)
	if err != nil {
		t.Fatal(err)
	}
	if Masked(plain).ClickHouse.Password != "" {
		t.Error("an empty password was masked as if set")
	}
}

func TestMetricsConfig(t *testing.T) {
	tests := []struct {
		yaml, err string
	}{
		{"metrics:\n  listen: 127.0.0.1:9464\n", ""},
		{"metrics:\n  listen: \":9464\"\n", ""},
		{"metrics:\n  listen: localhost\n", "metrics.listen"},
		{"metrics:\n  lag_interval: 1ms\n", "metrics.lag_interval"},
	}
	for _, tt := range tests {
		cfg, err := Load(writeFile(t, base+tt.yaml), nil)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%q: %v", tt.yaml, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%q: error %v, want one naming %s", tt.yaml, err, tt.err)
		case tt.err == "" && cfg.Metrics.LagInterval != DefaultMetricsLagInterval:
			t.Errorf("lag_interval default not applied: %s", cfg.Metrics.LagInterval)
		}
	}
}

func TestLoadKafkaNeedsOnlyTheKafkaSection(t *testing.T) {
	pw := secretFile(t, "pw-file\n")
	path := writeFile(t, "kafka:\n  brokers: [k1:9093]\n  sasl:\n    mechanism: plain\n    username: gen\n    password_file: "+pw+"\n")
	k, err := LoadKafka(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if k.SASL.Password != "pw-file" || k.SASL.Mechanism != "PLAIN" || k.Brokers[0] != "k1:9093" {
		t.Fatalf("LoadKafka = %+v", k)
	}
	if _, err := Load(path, nil); err == nil || !strings.Contains(err.Error(), "scorer.model_dir") {
		t.Fatalf("the full Load of a producer's file should want a model dir, got %v", err)
	}
	if _, err := LoadKafka(writeFile(t, "kafka:\n  brokerz: [x]\n"), nil); err == nil {
		t.Fatal("LoadKafka accepted a typo")
	}
}
