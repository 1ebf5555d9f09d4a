// Package kafkaauth secures recstream's Kafka connections: it turns the
// kafka.tls and kafka.sasl configuration into what kafka-go (Dialer,
// Transport) and franz-go (kgo options) need, in one place, so that every
// Kafka client of the product (the group consumer, the dead-letter sink,
// topic creation, the output sink, the generator's producer, the lag
// monitor) connects the same way.
//
// Supported: TLS (internal/tlsconfig: a private CA, client certificates, an
// encrypted PEM key), SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512. SASL
// without TLS sends PLAIN passwords in clear text; Validate allows it (a
// private network may want it) and the wiring logs a warning.
package kafkaauth

import (
	"errors"
	"fmt"
	"strings"

	"github.com/recstream/recstream/cmd/recstream/internal/tlsconfig"
)

// SASL mechanisms accepted by SASLConfig.Mechanism.
const (
	MechanismPlain       = "PLAIN"
	MechanismSCRAMSHA256 = "SCRAM-SHA-256"
	MechanismSCRAMSHA512 = "SCRAM-SHA-512"
)

// Config is the security of the Kafka connections: kafka.tls and
// kafka.sasl. The zero value is plaintext without authentication.
type Config struct {
	// TLS encrypts the connections (and authenticates the brokers, and
	// optionally the client by certificate).
	TLS tlsconfig.Config `yaml:"tls"`
	// SASL authenticates the client with a user name and password.
	SASL SASLConfig `yaml:"sasl"`
}

// SASLConfig is kafka.sasl. The zero value disables SASL.
type SASLConfig struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (case does not
	// matter). Empty disables SASL.
	Mechanism string `yaml:"mechanism"`
	// Username is the SASL user. Required with a mechanism.
	Username string `yaml:"username"`
	// Password is the SASL user's password. A secret: give it through the
	// environment (RECSTREAM_KAFKA_SASL_PASSWORD) or PasswordFile; it is
	// masked by `recstream config check` and never logged.
	Password string `yaml:"password" secret:"true"`
	// PasswordFile names a file holding Password (a trailing newline is
	// dropped), read at start-up. Set at most one of the two.
	PasswordFile string `yaml:"password_file" secretfile:"Password"`
}

// WithDefaults returns c with the mechanism's name in upper case.
func (c Config) WithDefaults() Config {
	c.SASL.Mechanism = strings.ToUpper(strings.TrimSpace(c.SASL.Mechanism))
	return c
}

// Validate reports the first invalid field, naming it by its YAML path
// below kafka (tls.cert_file, sasl.mechanism, ...). Files are not read
// here: New reads them.
func (c Config) Validate() error {
	if err := c.TLS.Validate(); err != nil {
		return fmt.Errorf("tls.%w", err)
	}
	if err := c.SASL.Validate(); err != nil {
		return fmt.Errorf("sasl.%w", err)
	}
	return nil
}

// Validate checks the SASL fields.
func (c SASLConfig) Validate() error {
	switch strings.ToUpper(strings.TrimSpace(c.Mechanism)) {
	case "":
		if c.Username != "" || c.Password != "" {
			return errors.New("mechanism: required when username or password is set (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
		}
		return nil
	case MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512:
	default:
		return fmt.Errorf("mechanism: must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got %q", c.Mechanism)
	}
	if c.Username == "" {
		return errors.New("username: required with a SASL mechanism")
	}
	if c.Password == "" {
		return errors.New("password: required with a SASL mechanism (set RECSTREAM_KAFKA_SASL_PASSWORD or sasl.password_file)")
	}
	return nil
}
