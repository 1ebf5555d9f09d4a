package kafkaauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
	kgosasl "github.com/twmb/franz-go/pkg/sasl"
)

// ClientID is the client id recstream's Kafka clients send.
const ClientID = "recstream"

// ErrRejected is matched (errors.Is) by Check's errors when a broker was
// reached but refused the client's security settings: a wrong password,
// user or mechanism, an untrusted certificate, TLS against a plaintext
// listener or the reverse. Such an error will not go away by retrying.
var ErrRejected = errors.New("kafka: security settings rejected")

// rejected marks an error as ErrRejected without changing its message.
type rejected struct{ error }

func (r rejected) Unwrap() error        { return r.error }
func (r rejected) Is(target error) bool { return target == ErrRejected }

// Auth is a Config made ready to connect: the TLS configuration read from
// its files and the SASL mechanism. It builds the kafka-go and franz-go
// values every client needs, each call a fresh one (kafka-go's Transport
// caches topic metadata, so clients must not share one).
//
// A nil *Auth is valid and means plaintext without authentication. Auth is
// safe for concurrent use. It holds the password inside the mechanism and
// never prints it: String describes it without secrets.
type Auth struct {
	tls       *tls.Config
	mech      kgosasl.Mechanism
	mechanism string
	user      string
}

// New reads c's files and builds its mechanism. It returns a nil *Auth
// (plaintext) when neither TLS nor SASL is configured. Errors name the
// field at fault (tls.ca_file, sasl.mechanism, ...).
func New(c Config) (*Auth, error) {
	c = c.WithDefaults()
	tc, err := c.TLS.Build()
	if err != nil {
		return nil, fmt.Errorf("tls.%w", err)
	}
	mech, err := c.SASL.mechanism()
	if err != nil {
		return nil, fmt.Errorf("sasl.%w", err)
	}
	if tc == nil && mech == nil {
		return nil, nil
	}
	return &Auth{tls: tc, mech: mech, mechanism: c.SASL.Mechanism, user: c.SASL.Username}, nil
}

// String describes the security in force, for logs: never a secret.
func (a *Auth) String() string {
	if a == nil {
		return "plaintext, no authentication"
	}
	var parts []string
	if a.tls != nil {
		parts = append(parts, "TLS")
	} else {
		parts = append(parts, "plaintext")
	}
	if a.mech != nil {
		parts = append(parts, fmt.Sprintf("SASL %s as %q", a.mechanism, a.user))
	} else {
		parts = append(parts, "no SASL")
	}
	return strings.Join(parts, ", ")
}

// TLS returns the client TLS configuration, nil for plaintext. Callers must
// not modify it.
func (a *Auth) TLS() *tls.Config {
	if a == nil {
		return nil
	}
	return a.tls
}

// PlaintextSASL reports whether a password would cross the network
// unencrypted (SASL without TLS): worth a warning at start-up.
func (a *Auth) PlaintextSASL() bool { return a != nil && a.mech != nil && a.tls == nil }

// Dialer returns a new kafka-go Dialer (for Conn and ConsumerGroup) that
// connects within timeout (zero means 10s) with a's TLS and SASL.
func (a *Auth) Dialer(timeout time.Duration) *kafka.Dialer {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	d := &kafka.Dialer{Timeout: timeout, DualStack: true, ClientID: ClientID}
	if a != nil {
		d.TLS = a.tls
		if a.mech != nil {
			d.SASLMechanism = kafkaGoMechanism{a.mech}
		}
	}
	return d
}

// Transport returns a new kafka-go Transport (for Writer and Client) that
// connects within dialTimeout (zero means kafka-go's 5s) with a's TLS and
// SASL. Give every Writer or Client its own.
func (a *Auth) Transport(dialTimeout time.Duration) *kafka.Transport {
	t := &kafka.Transport{DialTimeout: dialTimeout, ClientID: ClientID}
	if a != nil {
		t.TLS = a.tls
		if a.mech != nil {
			t.SASL = kafkaGoMechanism{a.mech}
		}
	}
	return t
}

// KgoOptions returns the franz-go client options for a's TLS and SASL
// (none for plaintext).
func (a *Auth) KgoOptions() []kgo.Opt {
	opts := []kgo.Opt{kgo.ClientID(ClientID)}
	if a == nil {
		return opts
	}
	if a.tls != nil {
		opts = append(opts, kgo.DialTLSConfig(a.tls.Clone()))
	}
	if a.mech != nil {
		opts = append(opts, kgo.SASL(a.mech))
	}
	return opts
}

// checkTimeout bounds Check's connection to one broker, TLS and SASL
// included.
const checkTimeout = 5 * time.Second

// Check connects to the first broker of brokers that answers, completes
// TLS and SASL, and asks for the cluster's metadata, so that a wrong
// password, CA or mechanism stops start-up with an error that says which
// setting to look at, instead of surfacing later as retries. It returns nil
// as soon as one broker accepts the client.
func (a *Auth) Check(ctx context.Context, brokers []string) error {
	if len(brokers) == 0 {
		return errors.New("kafka: no brokers to check")
	}
	d := a.Dialer(checkTimeout)
	var errs []error
	for _, b := range brokers {
		err := a.checkBroker(ctx, d, b)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

func (a *Auth) checkBroker(ctx context.Context, d *kafka.Dialer, broker string) error {
	conn, err := d.DialContext(ctx, "tcp", broker)
	if err == nil {
		defer conn.Close()
		if dl, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(dl)
		} else {
			_ = conn.SetDeadline(time.Now().Add(checkTimeout))
		}
		_, err = conn.Brokers() // a metadata request: refused unless authenticated
	}
	if err == nil {
		return nil
	}
	return a.explain(broker, err)
}

// explain turns a connection failure into a message naming the setting to
// check. It never includes a secret: the errors come from the network and
// the broker, which do not know the password.
func (a *Auth) explain(broker string, err error) error {
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var recordHeader tls.RecordHeaderError
	switch {
	case errors.Is(err, kafka.SASLAuthenticationFailed):
		return rejected{fmt.Errorf("kafka %s: the broker refused SASL %s login of user %q: check kafka.sasl.username and the password "+
			"(kafka.sasl.password, kafka.sasl.password_file or RECSTREAM_KAFKA_SASL_PASSWORD): %w", broker, a.mechanism, a.user, err)}
	case errors.Is(err, kafka.UnsupportedSASLMechanism):
		return rejected{fmt.Errorf("kafka %s: the broker does not accept SASL mechanism %s: check kafka.sasl.mechanism: %w", broker, a.mechanism, err)}
	case errors.Is(err, kafka.IllegalSASLState):
		return rejected{fmt.Errorf("kafka %s: the broker expects SASL authentication: set kafka.sasl: %w", broker, err)}
	case errors.As(err, &unknownAuthority):
		return rejected{fmt.Errorf("kafka %s: the broker's certificate is not signed by a trusted CA: check kafka.tls.ca_file: %w", broker, err)}
	case errors.As(err, &hostname):
		return rejected{fmt.Errorf("kafka %s: the broker's certificate is not for this host: check the broker address or kafka.tls.server_name: %w", broker, err)}
	case errors.As(err, &recordHeader):
		return rejected{fmt.Errorf("kafka %s: the broker does not speak TLS: check kafka.tls.enabled: %w", broker, err)}
	case a.TLS() != nil && isTimeout(err):
		// Not marked rejected: a broker that is slow to come up looks the same.
		return fmt.Errorf("kafka %s: no answer to the TLS handshake: is the listener plaintext? check kafka.tls.enabled and the port: %w", broker, err)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		hint := "does it require TLS (kafka.tls) or SASL (kafka.sasl)?"
		if a != nil && a.mech != nil {
			hint = "check kafka.sasl (mechanism, username, password) and kafka.tls"
		}
		return rejected{fmt.Errorf("kafka %s: the broker closed the connection: %s: %w", broker, hint, err)}
	}
	return fmt.Errorf("kafka %s: connect (%s): %w", broker, a, err)
}

// isTimeout reports whether err is a deadline passing, of a context or of
// the network.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
