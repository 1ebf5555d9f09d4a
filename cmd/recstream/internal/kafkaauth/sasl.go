package kafkaauth

import (
	"context"
	"errors"
	"strings"

	kgosasl "github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/segmentio/kafka-go/sasl"
)

// mechanisms returns the franz-go mechanism c names, or nil when SASL is
// off. franz-go's implementations serve both clients: kafka-go's own SCRAM
// package needs a module recstream does not carry, so kafka-go gets them
// through kafkaGoMechanism.
func (c SASLConfig) mechanism() (kgosasl.Mechanism, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	switch strings.ToUpper(strings.TrimSpace(c.Mechanism)) {
	case "":
		return nil, nil
	case MechanismPlain:
		return plain.Auth{User: c.Username, Pass: c.Password}.AsMechanism(), nil
	case MechanismSCRAMSHA256:
		return scram.Auth{User: c.Username, Pass: c.Password}.AsSha256Mechanism(), nil
	case MechanismSCRAMSHA512:
		return scram.Auth{User: c.Username, Pass: c.Password}.AsSha512Mechanism(), nil
	}
	return nil, errors.New("mechanism: unsupported") // unreachable: Validate checked it
}

// kafkaGoMechanism adapts a franz-go SASL mechanism to kafka-go's. Both are
// client-first challenge/response machines; they differ only in names.
type kafkaGoMechanism struct{ m kgosasl.Mechanism }

var _ sasl.Mechanism = kafkaGoMechanism{}

// Name is the mechanism's name in the SASL handshake.
func (k kafkaGoMechanism) Name() string { return k.m.Name() }

// Start begins one authentication: it returns the state machine and the
// client's first message.
func (k kafkaGoMechanism) Start(ctx context.Context) (sasl.StateMachine, []byte, error) {
	host := ""
	if md := sasl.MetadataFromContext(ctx); md != nil {
		host = md.Host
	}
	sess, first, err := k.m.Authenticate(ctx, host)
	if err != nil {
		return nil, nil, err
	}
	if first == nil {
		first = []byte{} // kafka-go: nil means "no initial response"
	}
	return kafkaGoSession{sess}, first, nil
}

type kafkaGoSession struct{ s kgosasl.Session }

// Next feeds the broker's answer to the session. franz-go may end with a
// last message to send unanswered; kafka-go cannot send one, and neither
// PLAIN nor SCRAM has one.
func (k kafkaGoSession) Next(_ context.Context, challenge []byte) (bool, []byte, error) {
	done, resp, err := k.s.Challenge(challenge)
	if err != nil {
		return false, nil, err
	}
	if done && len(resp) > 0 {
		return false, nil, errors.New("sasl: the mechanism ends with a message kafka-go cannot send")
	}
	return done, resp, nil
}
