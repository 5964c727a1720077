package finding_test

import (
	"encoding/json"
	"testing"

	"github.com/rampartci/rampart/pkg/policy/finding"
)

func TestParseSeverity(t *testing.T) {
	tests := []struct {
		in      string
		want    finding.Severity
		wantErr bool
	}{
		{"CRITICAL", finding.Critical, false},
		{"high", finding.High, false},
		{"Medium", finding.Medium, false},
		{"low", finding.Low, false},
		{"UNKNOWN", finding.Unknown, false},
		{"severe", finding.Unknown, true},
		{"", finding.Unknown, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := finding.ParseSeverity(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseSeverity(%q) = %v, %v; want %v, err %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestSortCountTop(t *testing.T) {
	fs := []finding.Finding{
		{ID: "CVE-3", Package: "b", Severity: finding.Low},
		{ID: "CVE-2", Package: "a", Severity: finding.Critical},
		{ID: "CVE-1", Package: "z", Severity: finding.High},
		{ID: "CVE-1", Package: "a", Severity: finding.High},
		{ID: "CVE-4", Package: "a", Severity: finding.Unknown},
	}
	top := finding.Top(fs, 3)
	want := []string{"CVE-2/a", "CVE-1/a", "CVE-1/z"}
	for i, f := range top {
		if got := f.ID + "/" + f.Package; got != want[i] {
			t.Errorf("top[%d] = %s, want %s", i, got, want[i])
		}
	}
	if len(top) != 3 || fs[0].ID != "CVE-3" {
		t.Errorf("Top changed its input or returned %d findings", len(top))
	}
	c := finding.Count(fs)
	if c != (finding.Counts{Critical: 1, High: 2, Low: 1, Unknown: 1}) || c.Total() != 5 {
		t.Errorf("Count = %+v", c)
	}
}

func TestSeverityJSON(t *testing.T) {
	b, err := json.Marshal(finding.Finding{ID: "CVE-1", Severity: finding.Critical})
	if err != nil {
		t.Fatal(err)
	}
	var back finding.Finding
	if err := json.Unmarshal(b, &back); err != nil || back.Severity != finding.Critical {
		t.Errorf("round trip of %s: %+v, %v", b, back, err)
	}
	if err := json.Unmarshal([]byte(`{"severity":"nope"}`), &back); err == nil {
		t.Error("bad severity decoded without error")
	}
}
