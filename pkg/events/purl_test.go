package events

import (
	"strings"
	"testing"
)

func TestOCIPurl(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	o, err := NewOCI("127.0.0.1:5000/team/shop", digest, "v1.2")
	if err != nil {
		t.Fatal(err)
	}
	s := o.String()
	want := "pkg:oci/shop@sha256%3A" + strings.Repeat("ab", 32) + "?repository_url=127.0.0.1%3A5000/team/shop&tag=v1.2"
	if s != want {
		t.Fatalf("purl = %s\nwant   %s", s, want)
	}
	back, err := ParseOCI(s)
	if err != nil || back != o || back.Repository() != "team/shop" || back.Ref() != "127.0.0.1:5000/team/shop@"+digest {
		t.Fatalf("ParseOCI = %+v, %v", back, err)
	}
	for _, bad := range []string{"pkg:npm/x@1", "pkg:oci/shop", "pkg:oci/shop@sha256:ab", "pkg:oci/shop@" + digest, "pkg:oci/shop@" + digest + "?repository_url=noregistry", "pkg:oci/%zz@" + digest} {
		if _, err := ParseOCI(bad); err == nil {
			t.Errorf("ParseOCI(%q) accepted", bad)
		}
	}
}
