// Package deps pins the module's dependencies while the packages that use
// them are written. Temporary: removed once every dependency has a user.
package deps

import (
	_ "github.com/ClickHouse/clickhouse-go/v2"
	_ "github.com/apache/arrow-go/v18/arrow/array"
	_ "github.com/apache/arrow-go/v18/arrow/ipc"
	_ "github.com/cenkalti/backoff/v4"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/segmentio/kafka-go"
	_ "github.com/spf13/cobra"
	_ "github.com/twmb/franz-go/pkg/kadm"
	_ "github.com/twmb/franz-go/pkg/kfake"
	_ "github.com/twmb/franz-go/pkg/kgo"
	_ "github.com/valyala/fastjson"
	_ "github.com/yalue/onnxruntime_go"
	_ "go.uber.org/zap"
	_ "gonum.org/v1/plot"
	_ "gonum.org/v1/plot/plotter"
	_ "gonum.org/v1/plot/vg"
	_ "google.golang.org/protobuf/encoding/protowire"
	_ "gopkg.in/yaml.v3"
)
