package commitscan

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy/finding"
)

const (
	goModVulnerable = "module github.com/acme/shop\n\ngo 1.22\n\nrequire golang.org/x/net v0.10.0\n"
	goModFixed      = "module github.com/acme/shop\n\ngo 1.22\n\nrequire golang.org/x/net v0.17.0\n"
	packageLock     = `{
  "name": "web",
  "version": "1.0.0",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "": {"name": "web", "version": "1.0.0", "dependencies": {"lodash": "^4.17.20"}},
    "node_modules/lodash": {"version": "4.17.20", "resolved": "https://registry.npmjs.org/lodash/-/lodash-4.17.20.tgz", "integrity": "sha512-PlhdFcillOINfeV7Ni6oF1TAEayyZBoZ8bcshTHqOYJYlrqzRK5hagpagky5o4HfCzzd1TRkXPMFq6cKk9rGmA=="}
  }
}
`
	dockerfileRoot = "FROM alpine:3.22\nRUN apk add --no-cache curl\nCMD [\"/bin/sh\"]\n"
	k8sPrivileged  = `apiVersion: v1
kind: Pod
metadata:
  name: shop
spec:
  containers:
    - name: shop
      image: shop:1.0
      securityContext:
        privileged: true
`
	terraformOpen = `resource "aws_security_group" "shop" {
  name        = "shop"
  description = "shop"
}

resource "aws_security_group_rule" "ssh" {
  type              = "ingress"
  description       = "ssh from anywhere"
  from_port         = 22
  to_port           = 22
  protocol          = "tcp"
  cidr_blocks       = ["0.0.0.0/0"]
  security_group_id = aws_security_group.shop.id
}
`
)

// has reports whether fs holds a finding with id whose package (the place,
// for source findings) starts with where, at sev.
func has(fs []finding.Finding, id, where string, sev finding.Severity) bool {
	return slices.ContainsFunc(fs, func(f finding.Finding) bool {
		return f.ID == id && strings.HasPrefix(f.Package, where) && f.Severity == sev
	})
}

func list(fs []finding.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "\n  %s %s in %s %s (%s) %s", f.Severity, f.ID, f.Package, f.InstalledVersion, f.Target, f.Title)
	}
	return b.String()
}

func TestScanCommit(t *testing.T) {
	s := newTestScanner(t, ScannerOptions{})
	tests := []struct {
		name  string
		files map[string]string
		check func(t *testing.T, fs []finding.Finding)
	}{
		{
			name:  "clean",
			files: map[string]string{"main.go": "package main\n\nfunc main() {}\n", "go.mod": goModFixed, "README.md": "# shop\n"},
			check: func(t *testing.T, fs []finding.Finding) {
				if len(fs) != 0 {
					t.Errorf("findings in a clean repository:%s", list(fs))
				}
			},
		},
		{
			name:  "aws key",
			files: map[string]string{"deploy/credentials.env": "# prod\nAWS_ACCESS_KEY_ID=" + awsKeyID + "\naws_secret_access_key = \"" + awsSecretKey + "\"\n"},
			check: func(t *testing.T, fs []finding.Finding) {
				if !has(fs, "aws-access-key-id", "deploy/credentials.env:2", finding.Critical) ||
					!has(fs, "aws-secret-access-key", "deploy/credentials.env:3", finding.Critical) {
					t.Errorf("AWS key id and secret not found at their lines:%s", list(fs))
				}
			},
		},
		{
			name:  "vulnerable go.mod",
			files: map[string]string{"go.mod": goModVulnerable},
			check: func(t *testing.T, fs []finding.Finding) {
				if !has(fs, "CVE-2023-44487", "golang.org/x/net", finding.High) {
					t.Errorf("CVE-2023-44487 in golang.org/x/net not found:%s", list(fs))
				}
			},
		},
		{
			name:  "vulnerable package-lock.json",
			files: map[string]string{"web/package-lock.json": packageLock},
			check: func(t *testing.T, fs []finding.Finding) {
				if !has(fs, "CVE-2021-23337", "lodash", finding.High) {
					t.Errorf("CVE-2021-23337 in lodash not found:%s", list(fs))
				}
			},
		},
		{
			name:  "misconfigurations",
			files: map[string]string{"Dockerfile": dockerfileRoot, "deploy/pod.yaml": k8sPrivileged, "infra/network.tf": terraformOpen},
			check: func(t *testing.T, fs []finding.Finding) {
				var files []string
				for _, f := range fs {
					files = append(files, strings.SplitN(f.Target, ":", 2)[0])
				}
				for _, want := range []string{"Dockerfile", "deploy/pod.yaml", "infra/network.tf"} {
					if !slices.Contains(files, want) {
						t.Errorf("no misconfiguration in %s:%s", want, list(fs))
					}
				}
				// Privileged containers are HIGH in Trivy's Kubernetes checks.
				if !slices.ContainsFunc(fs, func(f finding.Finding) bool {
					return strings.HasPrefix(f.Target, "deploy/pod.yaml") && f.Severity >= finding.High
				}) {
					t.Errorf("no High finding for the privileged pod:%s", list(fs))
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRepo(t)
			sha := r.commit(tt.name, tt.files)
			res, err := s.ScanCommit(t.Context(), r.event(sha))
			if err != nil {
				t.Fatal(err)
			}
			if res.DBVersion.IsZero() {
				t.Error("no DB version")
			}
			tt.check(t, res.Findings)
			t.Logf("%s: %d findings in %s", tt.name, len(res.Findings), res.Duration)
		})
	}
}

func TestScanCommitChecksOutTheCommit(t *testing.T) {
	s := newTestScanner(t, ScannerOptions{DisableMisconf: true})
	r := newRepo(t)
	leaky := r.commit("add creds", map[string]string{"creds.env": "AWS_ACCESS_KEY_ID=" + awsKeyID + "\n"})
	clean := r.commit("remove creds", map[string]string{"creds.env": "", "main.go": "package main\n"})

	res, err := s.ScanCommit(t.Context(), r.event(leaky))
	if err != nil {
		t.Fatal(err)
	}
	if !has(res.Findings, "aws-access-key-id", "creds.env:1", finding.Critical) {
		t.Errorf("older commit: key not found:%s", list(res.Findings))
	}
	if res, err = s.ScanCommit(t.Context(), r.event(clean)); err != nil || len(res.Findings) != 0 {
		t.Errorf("head commit: err=%v findings:%s", err, list(res.Findings))
	}
}

func TestScanCommitFetchesPullRequestRef(t *testing.T) {
	s := newTestScanner(t, ScannerOptions{DisableMisconf: true})
	r := newRepo(t)
	base := r.commit("base", map[string]string{"main.go": "package main\n"})
	head := r.commit("pr", map[string]string{"creds.env": "AWS_ACCESS_KEY_ID=" + awsKeyID + "\n"})
	c := r.event(head)
	c.Ref, c.PullRequest = r.pullRef(7, head, base), 7

	res, err := s.ScanCommit(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if !has(res.Findings, "aws-access-key-id", "creds.env:1", finding.Critical) {
		t.Errorf("PR head: key not found:%s", list(res.Findings))
	}
}

func TestScanCommitErrors(t *testing.T) {
	s := newTestScanner(t, ScannerOptions{DisableMisconf: true})
	r := newRepo(t)
	sha := r.commit("one", map[string]string{"a.txt": "a\n"})
	tests := []struct {
		name   string
		commit func() (c events.Commit)
	}{
		{"unknown commit", func() events.Commit { c := r.event(strings.Repeat("ab", 20)); return c }},
		{"short sha", func() events.Commit { c := r.event(sha[:7]); return c }},
		{"missing repository", func() events.Commit { c := r.event(sha); c.RepoURL = "file:///nonexistent/repo"; return c }},
		{"scheme not allowed", func() events.Commit { c := r.event(sha); c.RepoURL = "ftp://host/repo"; return c }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.ScanCommit(t.Context(), tt.commit())
			if !errors.Is(err, ErrCheckout) {
				t.Errorf("err = %v, want ErrCheckout", err)
			}
		})
	}
	t.Run("local repositories refused unless allowed", func(t *testing.T) {
		strict, err := NewScanner(ScannerOptions{DB: fixtureDB(t), DisableMisconf: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := strict.ScanCommit(t.Context(), r.event(sha)); !errors.Is(err, ErrCheckout) || !strings.Contains(err.Error(), "not allowed") {
			t.Errorf("err = %v, want a refused file:// URL", err)
		}
	})
}
