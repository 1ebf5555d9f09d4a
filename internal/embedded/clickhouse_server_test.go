package embedded

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

func startClickHouse(t *testing.T, dir string) *ClickHouseServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := StartClickHouse(ctx, dir, nil)
	if err != nil {
		t.Fatalf("StartClickHouse: %v (run make setup if clickhouse-server is missing)", err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return srv
}

func openConn(t *testing.T, addr, user string) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{addr},
		Auth:        clickhouse.Auth{Username: user},
		Protocol:    clickhouse.Native,
		DialTimeout: 2 * time.Second,
		ReadTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatalf("open %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func queryString(t *testing.T, conn driver.Conn, q string) string {
	t.Helper()
	var v string
	if err := conn.QueryRow(context.Background(), q).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

func processAlive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

func TestClickHouseServerLifecycle(t *testing.T) {
	dir := t.TempDir()
	srv := startClickHouse(t, dir)
	ctx := context.Background()

	host, _, err := net.SplitHostPort(srv.Addr())
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("Addr() = %q, want 127.0.0.1:port", srv.Addr())
	}
	pid := srv.PID()
	if pid <= 0 || !processAlive(pid) {
		t.Fatalf("PID() = %d, want a live process", pid)
	}
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		t.Errorf("server process group = %d (%v), want its own group %d", pgid, err, pid)
	}
	for _, f := range []string{"config.xml", "users.xml", "data", "log"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s not under the server dir: %v", f, err)
		}
	}

	conn := openConn(t, srv.Addr(), "default")
	if v := queryString(t, conn, "SELECT version()"); !strings.Contains(v, ".") {
		t.Fatalf("SELECT version() = %q", v)
	}
	if tz := queryString(t, conn, "SELECT timezone()"); tz != "UTC" && tz != "Etc/UTC" {
		t.Errorf("server timezone = %q, want UTC", tz)
	}
	for _, q := range []string{
		"CREATE TABLE default.kept (k UInt64, v String) ENGINE = MergeTree ORDER BY k",
	} {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO default.kept (k, v)")
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	if err := batch.Column(0).Append([]uint64{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := batch.Column(1).Append([]string{"a", "b", "c"}); err != nil {
		t.Fatal(err)
	}
	if err := batch.Send(); err != nil {
		t.Fatalf("send: %v", err)
	}

	// Stop: the process is gone and the port refuses connections.
	addr := srv.Addr()
	if err := srv.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if srv.PID() != 0 {
		t.Errorf("PID() after Stop = %d, want 0", srv.PID())
	}
	if processAlive(pid) {
		t.Errorf("pid %d still alive after Stop", pid)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Stop", addr)
	}

	// Restart: same address, same data.
	if err := srv.Restart(ctx); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if srv.Addr() != addr {
		t.Errorf("Addr() after Restart = %s, want %s", srv.Addr(), addr)
	}
	if got := queryString(t, openConn(t, srv.Addr(), "default"),
		"SELECT toString(sum(k)) || groupArray(v)[1] FROM (SELECT * FROM default.kept ORDER BY k)"); got != "6a" {
		t.Errorf("data after Restart: got %q, want %q", got, "6a")
	}

	// Kill (an outage drill) and Restart again: committed parts survive kill -9.
	pid = srv.PID()
	if err := srv.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if processAlive(pid) {
		t.Errorf("pid %d alive after Kill", pid)
	}
	if err := srv.Kill(); err != nil {
		t.Errorf("second Kill: %v", err)
	}
	if err := srv.Restart(ctx); err != nil {
		t.Fatalf("Restart after Kill: %v", err)
	}
	if srv.PID() == pid {
		t.Errorf("PID() after Restart = old pid %d", pid)
	}
	if got := queryString(t, openConn(t, srv.Addr(), "default"), "SELECT toString(count()) FROM default.kept"); got != "3" {
		t.Errorf("rows after Kill+Restart = %s, want 3", got)
	}
}

func TestClickHouseServerReadonlyUser(t *testing.T) {
	srv := startClickHouse(t, t.TempDir())
	conn := openConn(t, srv.Addr(), "readonly")
	if v := queryString(t, conn, "SELECT toString(1)"); v != "1" {
		t.Fatalf("readonly user select = %q", v)
	}
	err := conn.Exec(context.Background(), "CREATE DATABASE should_fail")
	if err == nil {
		t.Fatal("readonly user could create a database")
	}
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) || ex.Code != 164 { // READONLY
		t.Errorf("readonly CREATE DATABASE error = %v, want exception code 164", err)
	}
}

func TestStartClickHouseTwoServersOneMachine(t *testing.T) {
	a := startClickHouse(t, t.TempDir())
	b := startClickHouse(t, t.TempDir())
	if a.Addr() == b.Addr() {
		t.Fatalf("two servers share %s", a.Addr())
	}
}

func TestStartClickHouseFailsFastWhenServerExits(t *testing.T) {
	// A config file the server cannot parse makes it exit at once; the
	// launcher must notice the exit instead of waiting for its deadline, and
	// say why. (A broken table definition was used before, but ClickHouse
	// sometimes skipped it and started, and sometimes hung before listening.)
	srv := startClickHouse(t, t.TempDir())
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(srv.Dir(), "config.xml"), []byte("<clickhouse><garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err := srv.Restart(ctx)
	if err == nil {
		srv.Stop()
		t.Fatal("the server started with a broken config file")
	}
	if time.Since(start) > 20*time.Second {
		t.Errorf("failure took %v; it should not wait for the deadline", time.Since(start))
	}
	if !strings.Contains(err.Error(), "exited during start-up") || !strings.Contains(err.Error(), "server log:") {
		t.Errorf("error %q should say the server exited and quote its log", err)
	}
	if srv.PID() != 0 {
		t.Errorf("a failed start left pid %d behind", srv.PID())
	}
}
