package embedded

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

func TestZZUsersDProbe(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := StartClickHouse(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	os.MkdirAll(filepath.Join(s.Dir(), "users.d"), 0o755)
	os.WriteFile(filepath.Join(s.Dir(), "users.d", "x.xml"), []byte(`<?xml version="1.0"?><yandex><users><secure><password>p4ss-word-x</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></secure></users></yandex>`), 0o644)
	start := time.Now()
	for time.Since(start) < 15*time.Second {
		conn, _ := clickhouse.Open(&clickhouse.Options{Addr: []string{s.Addr()}, Auth: clickhouse.Auth{Username: "secure", Password: "p4ss-word-x"}})
		err = conn.Ping(ctx)
		conn.Close()
		if err == nil {
			t.Logf("ok after %s", time.Since(start))
			bad, _ := clickhouse.Open(&clickhouse.Options{Addr: []string{s.Addr()}, Auth: clickhouse.Auth{Username: "secure", Password: "wrong"}})
			t.Logf("wrong password: %v", bad.Ping(ctx))
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("never: %v", err)
}
