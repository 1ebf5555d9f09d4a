package sinks

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestEnsureTopic(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addrs := newKfake(t).ListenAddrs()
	spec := TopicSpec{Name: "recs.users", Partitions: 6, Configs: map[string]string{"cleanup.policy": "compact"}}
	for range 2 { // the second call finds the topic and leaves it alone
		if err := EnsureTopic(ctx, addrs, nil, spec); err != nil {
			t.Fatalf("EnsureTopic: %v", err)
		}
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	details, err := adm.ListTopics(ctx, spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	if d := details[spec.Name]; d.Err != nil || len(d.Partitions) != 6 {
		t.Fatalf("topic %s: %d partitions, err %v; want 6", spec.Name, len(d.Partitions), d.Err)
	}
	cfgs, err := adm.DescribeTopicConfigs(ctx, spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := cfgs.On(spec.Name, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" {
			found = c.MaybeValue() == "compact"
		}
	}
	if !found {
		t.Errorf("cleanup.policy is not compact: %+v", rc.Configs)
	}

	if err := EnsureTopic(ctx, addrs, nil, TopicSpec{}); err == nil {
		t.Error("EnsureTopic without a name succeeded")
	}
}
