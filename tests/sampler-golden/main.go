// Command sampler-golden runs the OpenTelemetry Collector's
// probabilistic_sampler processor (contrib v0.161.0) over generated spans
// and log records and writes, per item, the input and what the processor
// did with it (kept or not, the tracestate or sampling attributes it
// wrote), as JSON lines. Tern's probabilistic_sampler tests replay the
// file: their decisions must be the same.
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"strconv"

	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/probabilisticsamplerprocessor"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"
)

type config struct {
	Percentage      float32 `json:"sampling_percentage"`
	HashSeed        uint32  `json:"hash_seed"`
	Mode            string  `json:"mode"`
	FailClosed      bool    `json:"fail_closed"`
	Precision       int     `json:"sampling_precision"`
	AttributeSource string  `json:"attribute_source"`
	FromAttribute   string  `json:"from_attribute"`
	Priority        string  `json:"sampling_priority"`
}

type attr struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value string `json:"value"`
}

type item struct {
	Signal     string  `json:"signal"`
	Config     int     `json:"config"`
	TraceID    string  `json:"trace_id"`
	TraceState string  `json:"trace_state,omitempty"`
	Attrs      []attr  `json:"attributes"`
	Kept       bool    `json:"kept"`
	OutState   *string `json:"out_trace_state,omitempty"`
	OutAttrs   []attr  `json:"out_attributes,omitempty"`
}

var traceStates = []string{
	"", "", "", "ot=th:8", "ot=th:c", "ot=th:fd70a", "ot=th:0",
	"ot=rv:0123456789abcd", "ot=rv:f0000000000000;th:4", "ot=th:8;rv:0000000000000f",
	"vendor=x,ot=th:4", "a=1,ot=rv:ABCDEF01234567;p:q,b=2", "ot=th:xyz", "ot=rv:12",
	"bad==", "A=1", "ot=th:8;", " a=1 , b=2 ", "ot=p:1", "ot=th:ffffffffffffff",
}

func putAttr(m pcommon.Map, a attr) {
	switch a.Type {
	case "int":
		v, _ := strconv.ParseInt(a.Value, 10, 64)
		m.PutInt(a.Key, v)
	case "double":
		v, _ := strconv.ParseFloat(a.Value, 64)
		m.PutDouble(a.Key, v)
	case "bool":
		m.PutBool(a.Key, a.Value == "true")
	case "bytes":
		b, _ := hex.DecodeString(a.Value)
		m.PutEmptyBytes(a.Key).FromRaw(b)
	default:
		m.PutStr(a.Key, a.Value)
	}
}

func readAttrs(m pcommon.Map) []attr {
	out := []attr{}
	m.Range(func(k string, v pcommon.Value) bool {
		t := "str"
		s := v.AsString()
		switch v.Type() {
		case pcommon.ValueTypeInt:
			t = "int"
		case pcommon.ValueTypeDouble:
			t = "double"
			s = strconv.FormatFloat(v.Double(), 'g', -1, 64)
		case pcommon.ValueTypeBool:
			t = "bool"
		case pcommon.ValueTypeBytes:
			t = "bytes"
			s = hex.EncodeToString(v.Bytes().AsRaw())
		}
		out = append(out, attr{k, t, s})
		return true
	})
	return out
}

func traceID(r *rand.Rand) pcommon.TraceID {
	var id pcommon.TraceID
	if r.Intn(12) != 0 {
		r.Read(id[:])
	}
	return id
}

func spanPriority(r *rand.Rand) []attr {
	switch r.Intn(14) {
	case 0:
		return []attr{{"sampling.priority", "int", "0"}}
	case 1:
		return []attr{{"sampling.priority", "int", "1"}}
	case 2:
		return []attr{{"sampling.priority", "int", "-1"}}
	case 3:
		return []attr{{"sampling.priority", "double", "0"}}
	case 4:
		return []attr{{"sampling.priority", "double", "2.5"}}
	case 5:
		return []attr{{"sampling.priority", "str", "0"}}
	case 6:
		return []attr{{"sampling.priority", "str", "5"}}
	case 7:
		return []attr{{"sampling.priority", "str", "abc"}}
	case 8:
		return []attr{{"sampling.priority", "bool", "true"}}
	default:
		return []attr{{"other", "str", "x"}}
	}
}

func logAttrs(r *rand.Rand) []attr {
	out := []attr{{"first", "str", "a"}}
	switch r.Intn(8) {
	case 0:
		out = append(out, attr{"sampling.threshold", "str", []string{"8", "c", "fd70a", "xyz", "0"}[r.Intn(5)]})
	case 1:
		out = append(out, attr{"sampling.randomness", "str", []string{"0123456789abcd", "fffffffffffff0", "12"}[r.Intn(3)]})
	case 2:
		out = append(out, attr{"sampling.threshold", "int", "8"})
	}
	switch r.Intn(6) {
	case 0:
		out = append(out, attr{"user.id", "str", fmt.Sprintf("user-%d", r.Intn(1000))})
	case 1:
		out = append(out, attr{"user.id", "int", strconv.Itoa(r.Intn(1000000))})
	case 2:
		out = append(out, attr{"user.id", "bytes", hex.EncodeToString([]byte{byte(r.Intn(256)), byte(r.Intn(256))})})
	case 3:
		out = append(out, attr{"user.id", "str", ""})
	case 4:
		out = append(out, attr{"user.id", "bool", "true"})
	}
	switch r.Intn(7) {
	case 0:
		out = append(out, attr{"prio", "int", "0"})
	case 1:
		out = append(out, attr{"prio", "int", "100"})
	case 2:
		out = append(out, attr{"prio", "double", "12.5"})
	case 3:
		out = append(out, attr{"prio", "double", "150"})
	case 4:
		out = append(out, attr{"prio", "str", "50"})
	}
	return out
}

func main() {
	configs := []config{
		{Percentage: 25, FailClosed: true, Precision: 4},
		{Percentage: 25, HashSeed: 42, FailClosed: true, Precision: 4},
		{Percentage: 33.3, HashSeed: 7, FailClosed: false, Precision: 4},
		{Percentage: 0.01, FailClosed: true, Precision: 4},
		{Percentage: 100, FailClosed: true, Precision: 4},
		{Percentage: 0, FailClosed: true, Precision: 4},
		{Percentage: 0, FailClosed: false, Precision: 4},
		{Percentage: 25, Mode: "proportional", FailClosed: true, Precision: 4},
		{Percentage: 10, Mode: "proportional", FailClosed: false, Precision: 2},
		{Percentage: 0.5, Mode: "proportional", FailClosed: true, Precision: 14},
		{Percentage: 25, Mode: "equalizing", FailClosed: true, Precision: 4},
		{Percentage: 1, Mode: "equalizing", FailClosed: false, Precision: 3},
		{Percentage: 50, AttributeSource: "record", FromAttribute: "user.id", FailClosed: true, Precision: 4},
		{Percentage: 50, AttributeSource: "traceID", FromAttribute: "user.id", HashSeed: 3, FailClosed: true, Precision: 4, Priority: "prio"},
		{Percentage: 20, Mode: "proportional", FromAttribute: "user.id", FailClosed: false, Precision: 4, Priority: "prio"},
		{Percentage: 0, FailClosed: true, Precision: 4, Priority: "prio"},
	}
	r := rand.New(rand.NewSource(20261204))
	enc := json.NewEncoder(os.Stdout)
	factory := probabilisticsamplerprocessor.NewFactory()
	ctx := context.Background()
	for ci, c := range configs {
		cfg := factory.CreateDefaultConfig().(*probabilisticsamplerprocessor.Config)
		cfg.SamplingPercentage = c.Percentage
		cfg.HashSeed = c.HashSeed
		cfg.FailClosed = c.FailClosed
		cfg.SamplingPrecision = c.Precision
		cfg.FromAttribute = c.FromAttribute
		cfg.SamplingPriority = c.Priority
		if c.AttributeSource != "" {
			cfg.AttributeSource = probabilisticsamplerprocessor.AttributeSource(c.AttributeSource)
		}
		if err := cfg.Mode.UnmarshalText([]byte(c.Mode)); err != nil {
			panic(err)
		}
		if err := cfg.Validate(); err != nil {
			panic(fmt.Sprintf("config %d: %v", ci, err))
		}
		enc.Encode(map[string]any{"config": ci, "settings": c})
		set := processortest.NewNopSettings(component.MustNewType("probabilistic_sampler"))

		// Spans: one request with 400 spans.
		tsink := new(consumertest.TracesSink)
		tp, err := factory.CreateTraces(ctx, set, cfg, tsink)
		if err != nil {
			panic(err)
		}
		td := ptrace.NewTraces()
		spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
		var items []item
		for i := 0; i < 400; i++ {
			s := spans.AppendEmpty()
			s.SetName(strconv.Itoa(i))
			id := traceID(r)
			s.SetTraceID(id)
			s.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, byte(i)})
			ts := traceStates[r.Intn(len(traceStates))]
			s.TraceState().FromRaw(ts)
			attrs := spanPriority(r)
			for _, a := range attrs {
				putAttr(s.Attributes(), a)
			}
			items = append(items, item{Signal: "traces", Config: ci, TraceID: hex.EncodeToString(id[:]), TraceState: ts, Attrs: attrs})
		}
		if err := tp.ConsumeTraces(ctx, td); err != nil {
			panic(err)
		}
		for _, out := range tsink.AllTraces() {
			rss := out.ResourceSpans()
			for i := 0; i < rss.Len(); i++ {
				sss := rss.At(i).ScopeSpans()
				for j := 0; j < sss.Len(); j++ {
					ss := sss.At(j).Spans()
					for k := 0; k < ss.Len(); k++ {
						s := ss.At(k)
						n, _ := strconv.Atoi(s.Name())
						items[n].Kept = true
						st := s.TraceState().AsRaw()
						items[n].OutState = &st
					}
				}
			}
		}
		for _, it := range items {
			enc.Encode(it)
		}

		// Log records: one request with 400 records.
		lsink := new(consumertest.LogsSink)
		lp, err := factory.CreateLogs(ctx, set, cfg, lsink)
		if err != nil {
			panic(err)
		}
		ld := plog.NewLogs()
		recs := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
		items = items[:0]
		for i := 0; i < 400; i++ {
			l := recs.AppendEmpty()
			l.Body().SetStr(strconv.Itoa(i))
			id := traceID(r)
			if r.Intn(3) == 0 {
				id = pcommon.TraceID{}
			}
			l.SetTraceID(id)
			attrs := logAttrs(r)
			for _, a := range attrs {
				putAttr(l.Attributes(), a)
			}
			items = append(items, item{Signal: "logs", Config: ci, TraceID: hex.EncodeToString(id[:]), Attrs: attrs})
		}
		if err := lp.ConsumeLogs(ctx, ld); err != nil {
			panic(err)
		}
		for _, out := range lsink.AllLogs() {
			rls := out.ResourceLogs()
			for i := 0; i < rls.Len(); i++ {
				sls := rls.At(i).ScopeLogs()
				for j := 0; j < sls.Len(); j++ {
					ls := sls.At(j).LogRecords()
					for k := 0; k < ls.Len(); k++ {
						l := ls.At(k)
						n, _ := strconv.Atoi(l.Body().Str())
						items[n].Kept = true
						items[n].OutAttrs = readAttrs(l.Attributes())
					}
				}
			}
		}
		for _, it := range items {
			enc.Encode(it)
		}
	}
}
