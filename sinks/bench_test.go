package sinks

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/recstream/recstream/schemas"
)

// Benchmarks of the sinks against the package's real servers. Run one at a
// time, with few iterations (each writes 100k rows):
//
//	go test ./sinks/ -run '^$' -bench ClickHouse -benchtime 5x
//	go test ./sinks/ -run '^$' -bench Kafka -benchtime 5x

const benchRows = 100_000

// BenchmarkClickHouseSinkVsRaw writes the same 100k recommendations (top-20)
// with the sink (from Arrow) and with plain clickhouse-go batches built
// from Go structs, alternating, and reports both rates and their ratio.
//
//   - raw_rows: batch.Append(row...) per row, the usual clickhouse-go code;
//   - raw_columnar: one Column(i).Append per column with Go slices
//     ([][]string for items: the driver walks it by reflection).
func BenchmarkClickHouseSinkVsRaw(b *testing.B) {
	db := freshDatabase(b)
	s := newCHSink(b, ClickHouseConfig{Database: db, WriteEvents: new(bool)})
	conn := chConn(b, sharedCH.Addr())
	recs, rows := makeRecs(b, recSpec{n: benchRows, k: 20, seed: 5})
	defer recs.Release()
	ctx := context.Background()
	insert := fmt.Sprintf("INSERT INTO %s.recommendations (%s)", db, schemas.ClickHouseRecommendationsColumns)

	var sinkT, rawRowsT, rawColT time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := s.Write(ctx, nil, recs); err != nil {
			b.Fatal(err)
		}
		sinkT += time.Since(start)

		start = time.Now()
		if err := rawRowInsert(ctx, conn, insert, rows); err != nil {
			b.Fatal(err)
		}
		rawRowsT += time.Since(start)

		start = time.Now()
		if err := rawColumnarInsert(ctx, conn, insert, rows); err != nil {
			b.Fatal(err)
		}
		rawColT += time.Since(start)
	}
	b.StopTimer()
	rate := func(d time.Duration) float64 { return float64(benchRows*b.N) / d.Seconds() }
	b.ReportMetric(rate(sinkT), "sink_rows/s")
	b.ReportMetric(rate(rawRowsT), "raw_rows_rows/s")
	b.ReportMetric(rate(rawColT), "raw_columnar_rows/s")
	b.ReportMetric(rate(sinkT)/rate(rawRowsT), "sink/raw_rows")
	b.ReportMetric(rate(sinkT)/rate(rawColT), "sink/raw_columnar")
	b.ReportMetric(0, "ns/op")
}

func rawRowInsert(ctx context.Context, conn driver.Conn, insert string, rows []schemas.Recommendation) error {
	batch, err := conn.PrepareBatch(ctx, insert)
	if err != nil {
		return err
	}
	for i := range rows {
		r := &rows[i]
		if err := batch.Append(r.UserID, r.Items, r.Scores, r.ModelVersion, r.Version,
			time.UnixMilli(r.EventTsMs), r.EventTsMs, time.UnixMilli(r.ProducedAtMs), r.Partition, r.Offset); err != nil {
			return err
		}
	}
	return batch.Send()
}

func rawColumnarInsert(ctx context.Context, conn driver.Conn, insert string, rows []schemas.Recommendation) error {
	n := len(rows)
	var (
		users, models      = make([]string, n), make([]string, n)
		items              = make([][]string, n)
		scores             = make([][]float32, n)
		versions           = make([]uint64, n)
		eventTs, produced  = make([]time.Time, n), make([]time.Time, n)
		eventTsMs, offsets = make([]int64, n), make([]int64, n)
		partitions         = make([]int32, n)
	)
	for i := range rows {
		r := &rows[i]
		users[i], items[i], scores[i], models[i], versions[i] = r.UserID, r.Items, r.Scores, r.ModelVersion, r.Version
		eventTs[i], eventTsMs[i], produced[i] = time.UnixMilli(r.EventTsMs), r.EventTsMs, time.UnixMilli(r.ProducedAtMs)
		partitions[i], offsets[i] = r.Partition, r.Offset
	}
	batch, err := conn.PrepareBatch(ctx, insert)
	if err != nil {
		return err
	}
	for i, col := range []any{users, items, scores, models, versions, eventTs, eventTsMs, produced, partitions, offsets} {
		if err := batch.Column(i).Append(col); err != nil {
			return err
		}
	}
	return batch.Send()
}

// BenchmarkClickHouseSinkEvents writes 100k raw events.
func BenchmarkClickHouseSinkEvents(b *testing.B) {
	s := newCHSink(b, ClickHouseConfig{})
	events := makeEvents(b, benchRows, 20_000)
	defer events.Release()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Write(context.Background(), events, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchRows*b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkKafkaSinkWrite produces 100k recommendations (top-20, about 600
// bytes of JSON each) per op to an in-process kfake broker over TCP, acks
// all, and reports records per second; the broker shares the process's CPU.
func BenchmarkKafkaSinkWrite(b *testing.B) {
	for _, compression := range []string{"none", "lz4", "zstd", "snappy"} {
		b.Run(compression, func(b *testing.B) {
			c := newKfake(b)
			s := newKafkaSink(b, KafkaSinkConfig{Brokers: c.ListenAddrs(), Partitions: 8, Compression: compression})
			recs, _ := makeRecs(b, recSpec{n: benchRows, k: 20, seed: 6})
			defer recs.Release()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := s.Write(context.Background(), nil, recs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(benchRows*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
