// Command pdata-json reads OTLP export requests with the OpenTelemetry
// Collector's own pdata code and writes them back as the Collector's
// OTLP/JSON, so that Tern's end-to-end tests can compare Tern's JSON
// decoding with the Collector's (tests/tests/json_compat.rs). It shares the
// reference Collector's module (../go.mod), so both read OTLP with the same
// pdata release.
//
// Input, one request per line: signal (traces, metrics, logs), a tab,
// format (json or proto), a tab, the body in hex. Output, one line per
// input: "OK", a tab and the request as the Collector's JSON marshaler
// writes it; or "ERR", a tab and the decoder's error.
package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

type request interface {
	UnmarshalJSON([]byte) error
	UnmarshalProto([]byte) error
	MarshalJSON() ([]byte, error)
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<28)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for in.Scan() {
		fields := strings.Split(in.Text(), "\t")
		if len(fields) != 3 {
			fmt.Fprintf(out, "ERR\tbad input line\n")
			continue
		}
		var req request
		switch fields[0] {
		case "traces":
			req = ptraceotlp.NewExportRequest()
		case "metrics":
			req = pmetricotlp.NewExportRequest()
		case "logs":
			req = plogotlp.NewExportRequest()
		default:
			fmt.Fprintf(out, "ERR\tunknown signal %q\n", fields[0])
			continue
		}
		body, err := hex.DecodeString(fields[2])
		if err == nil {
			if fields[1] == "json" {
				err = req.UnmarshalJSON(body)
			} else {
				err = req.UnmarshalProto(body)
			}
		}
		var text []byte
		if err == nil {
			text, err = req.MarshalJSON()
		}
		if err != nil {
			fmt.Fprintf(out, "ERR\t%s\n", strings.ReplaceAll(err.Error(), "\n", " "))
			continue
		}
		fmt.Fprintf(out, "OK\t%s\n", text)
	}
}
