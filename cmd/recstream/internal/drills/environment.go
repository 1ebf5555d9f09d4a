package drills

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/recstream/recstream/cmd/recstream/internal/generator"
	"github.com/recstream/recstream/internal/embedded"
	"github.com/recstream/recstream/scorers/models"
	"github.com/recstream/recstream/scorers/training"
)

// Cluster shape of every drill: three brokers, every topic replicated three
// times, and a write acknowledged once two replicas have it, so that one
// broker can be lost without losing a write or stopping producers.
const (
	clusterBrokers    = 3
	replicationFactor = 3
	minInsyncReplicas = 2
)

// environment is what every scenario of a drill shares: one Apache Kafka
// cluster, one ClickHouse server and a models directory.
type environment struct {
	kafka *embedded.ApacheKafka
	ch    *embedded.ClickHouseServer
	adm   *kadm.Client
	admCl *kgo.Client
	// modelsDir is a model registry (models.ModelRegistry): one directory
	// per version.
	modelsDir string
	// v1 is the model every scenario and the reference use; v2 the one
	// model-rollback switches to (empty when that scenario is not run).
	v1, v2 string
}

// startEnvironment starts the cluster and the server under workDir and
// trains the models.
func startEnvironment(ctx context.Context, cfg Config, log *zap.Logger, note func(string)) (env *environment, err error) {
	env = &environment{}
	defer func() {
		if err != nil {
			env.Close()
		}
	}()
	for _, sub := range []string{"kafka", "clickhouse", "models", "scenarios"} {
		if err := os.RemoveAll(filepath.Join(cfg.WorkDir, sub)); err != nil {
			return nil, fmt.Errorf("clear work dir: %w", err)
		}
	}
	note(fmt.Sprintf("starting Apache Kafka (%d brokers, replication factor %d, min.insync.replicas %d)",
		clusterBrokers, replicationFactor, minInsyncReplicas))
	began := time.Now()
	env.kafka, err = embedded.StartApacheKafka(ctx, embedded.ApacheKafkaConfig{
		Dir: filepath.Join(cfg.WorkDir, "kafka"), Brokers: clusterBrokers, Partitions: cfg.Partitions,
		ReplicationFactor: replicationFactor, MinInsyncReplicas: minInsyncReplicas, LibsDir: cfg.KafkaLibsDir,
		ServerProperties: map[string]string{
			// The pipeline's session timeout may go below the broker's
			// default minimum of 6 s.
			"group.min.session.timeout.ms": "1000",
		},
	}, log.Named("kafka"))
	if err != nil {
		return nil, fmt.Errorf("start apache kafka (run make setup): %w", err)
	}
	note(fmt.Sprintf("kafka ready at %s in %s", env.kafka.AddrList(), time.Since(began).Round(time.Millisecond)))
	env.admCl, err = kgo.NewClient(kgo.SeedBrokers(env.kafka.Addrs()...),
		// kadm answers from the client's metadata cache while it is younger
		// than this (5 s by default): leadership moves would be seen late.
		kgo.MetadataMinAge(100*time.Millisecond),
		kgo.DialTimeout(time.Second),
		kgo.RetryTimeout(2*time.Second))
	if err != nil {
		return nil, fmt.Errorf("kafka admin client: %w", err)
	}
	env.adm = kadm.NewClient(env.admCl)

	began = time.Now()
	env.ch, err = embedded.StartClickHouse(ctx, filepath.Join(cfg.WorkDir, "clickhouse"), log.Named("clickhouse"))
	if err != nil {
		return nil, fmt.Errorf("start clickhouse (run make setup): %w", err)
	}
	note(fmt.Sprintf("clickhouse ready at %s in %s", env.ch.Addr(), time.Since(began).Round(time.Millisecond)))

	env.modelsDir = filepath.Join(cfg.WorkDir, "models")
	began = time.Now()
	if env.v1, err = trainVersion(ctx, env.modelsDir, cfg.Seed, cfg.Events, 1); err != nil {
		return nil, err
	}
	if slices.Contains(cfg.Scenarios, ScenarioModelRollback) {
		if env.v2, err = trainVersion(ctx, env.modelsDir, cfg.Seed, cfg.Events, 2); err != nil {
			return nil, err
		}
		if env.v2 == env.v1 {
			return nil, fmt.Errorf("model v2 came out identical to v1 (%s): model-rollback would switch nothing", env.v1)
		}
	}
	msg := "model v1 " + env.v1
	if env.v2 != "" {
		msg += ", v2 " + env.v2
	}
	note(fmt.Sprintf("trained %s in %s", msg, time.Since(began).Round(time.Millisecond)))
	return env, nil
}

// trainHistory is how many valid events of the same synthetic world the
// models learn from.
const trainHistory = 20000

// trainVersion trains the built-in model on a history of the drill's
// synthetic world (its own seed, so not the drill's input) with the
// trainer's seeds set to modelSeed, and writes it into modelsDir under its
// version name. It returns the version.
func trainVersion(ctx context.Context, modelsDir string, seed uint64, events int, modelSeed uint64) (string, error) {
	gcfg := inputShape(events)
	gcfg.Seed = seed ^ 0x7a11ed
	gen := generator.New(gcfg)
	history, err := generator.TrainingHistory(gen, trainHistory)
	if err != nil {
		return "", err
	}
	tcfg := training.TrainConfig{}
	tcfg.Item2Vec.Seed, tcfg.BPR.Seed, tcfg.ALS.Seed = modelSeed, modelSeed, modelSeed
	te, err := training.Train(ctx, history, tcfg, nil)
	if err != nil {
		return "", fmt.Errorf("train model v%d: %w", modelSeed, err)
	}
	tmp := filepath.Join(modelsDir, ".train-v"+strconv.FormatUint(modelSeed, 10))
	if err := models.WriteModelDir(tmp, te.ModelSpec(map[string]any{"drill_seed": seed, "model_seed": modelSeed})); err != nil {
		return "", fmt.Errorf("write model v%d: %w", modelSeed, err)
	}
	meta, err := models.ReadModelMetadata(tmp)
	if err != nil {
		return "", fmt.Errorf("model v%d: %w", modelSeed, err)
	}
	// The registry's directory name is the version records carry.
	if err := os.Rename(tmp, filepath.Join(modelsDir, meta.Version)); err != nil {
		return "", fmt.Errorf("file model v%d as %s: %w", modelSeed, meta.Version, err)
	}
	return meta.Version, nil
}

// modelDir is the directory of version.
func (e *environment) modelDir(version string) string { return filepath.Join(e.modelsDir, version) }

// createTopics creates a run's input, dead-letter and (compacted) output
// topics with partitions each, the cluster's replication and
// min.insync.replicas, and waits until every partition is in sync on every
// broker. recstream never creates its input; the dead-letter and output
// topics it would create itself are made here as an operator would, so
// that a run starts on a settled cluster.
//
// The input and dead-letter topics keep their records for ever
// (retention.ms -1). Their records carry the input's event time as log time
// (so that every topic holds byte-identical logs), and that time is months
// old: the broker's default 7-day time retention judges a segment by its
// newest record's timestamp, so the first retention check (30 s after a
// broker starts, then every 5 min) deleted every record not yet fetched —
// mid-drill, while a killed pipeline waited for its restart. The drill
// counted those as lost (issue 16); they were deleted before recstream
// could read them. The output topic is compacted, which deletes nothing by
// time.
func (e *environment) createTopics(ctx context.Context, partitions int, input, dlq, output string) error {
	minISR := strconv.Itoa(minInsyncReplicas)
	compact, forever := "compact", "-1"
	for _, t := range []struct {
		name    string
		configs map[string]*string
	}{
		{input, map[string]*string{"min.insync.replicas": &minISR, "retention.ms": &forever}},
		{dlq, map[string]*string{"min.insync.replicas": &minISR, "retention.ms": &forever}},
		{output, map[string]*string{"min.insync.replicas": &minISR, "cleanup.policy": &compact}},
	} {
		resp, err := e.adm.CreateTopics(ctx, int32(partitions), replicationFactor, t.configs, t.name)
		if err != nil {
			return fmt.Errorf("create topic %s: %w", t.name, err)
		}
		for _, r := range resp.Sorted() {
			if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
				return fmt.Errorf("create topic %s: %w", t.name, r.Err)
			}
		}
	}
	// Topic creation is asynchronous: wait until every partition has a
	// leader and a full ISR, and every broker knows the topics.
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := e.kafka.WaitInSync(waitCtx, input, dlq, output); err != nil {
		return err
	}
	return e.waitTopicsEverywhere(waitCtx, input, dlq, output)
}

// waitTopicsEverywhere waits until every running broker's own metadata
// lists topics: a broker learns of a new topic a moment after the
// controller, and a client that asks it first is told the topic does not
// exist.
func (e *environment) waitTopicsEverywhere(ctx context.Context, topics ...string) error {
	for i := 0; i < e.kafka.Nodes(); i++ {
		if e.kafka.PID(i) == 0 {
			continue // stopped
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(e.kafka.Addr(i)), kgo.DialTimeout(time.Second))
		if err != nil {
			return fmt.Errorf("kafka client for node %d: %w", e.kafka.NodeID(i), err)
		}
		err = waitBrokerKnows(ctx, cl, topics)
		cl.Close()
		if err != nil {
			return fmt.Errorf("broker node %d: %w", e.kafka.NodeID(i), err)
		}
	}
	return nil
}

func waitBrokerKnows(ctx context.Context, cl *kgo.Client, topics []string) error {
	for {
		req := kmsg.NewPtrMetadataRequest()
		for _, t := range topics {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(t)
			req.Topics = append(req.Topics, rt)
		}
		resp, err := cl.SeedBrokers()[0].Request(ctx, req)
		known := 0
		if err == nil {
			for _, t := range resp.(*kmsg.MetadataResponse).Topics {
				if t.ErrorCode == 0 && len(t.Partitions) > 0 {
					known++
				}
			}
		}
		if known == len(topics) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topics %v not in its metadata: %w (last: %v)", topics, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// openClickHouse connects to database on the drill's server.
func (e *environment) openClickHouse(database string) (clickhouse.Conn, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: []string{e.ch.Addr()}, Auth: clickhouse.Auth{Database: database, Username: "default"},
		DialTimeout: 5 * time.Second, ReadTimeout: time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %s: %w", e.ch.Addr(), err)
	}
	return conn, nil
}

// coordinatorNode returns the index of the node that coordinates group.
func (e *environment) coordinatorNode(ctx context.Context, group string) (int, error) {
	resp := e.adm.FindGroupCoordinators(ctx, group)
	r, ok := resp[group]
	if !ok || r.Err != nil {
		return -1, fmt.Errorf("find the coordinator of group %s: %v", group, resp.Error())
	}
	for i := 0; i < e.kafka.Nodes(); i++ {
		if e.kafka.NodeID(i) == r.NodeID {
			return i, nil
		}
	}
	return -1, fmt.Errorf("group %s: coordinator node id %d is not a node of the cluster", group, r.NodeID)
}

// Close stops the server and the cluster.
func (e *environment) Close() {
	if e.admCl != nil {
		e.admCl.Close()
	}
	if e.ch != nil {
		_ = e.ch.Stop()
	}
	if e.kafka != nil {
		_ = e.kafka.Close()
	}
}
