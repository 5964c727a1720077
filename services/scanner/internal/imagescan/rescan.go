package imagescan

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy/finding"
	"github.com/rampartci/rampart/pkg/policy/gate"
	"github.com/rampartci/rampart/services/scanner/internal/scan"
)

// RescanReport says what a zero-day re-scan did.
type RescanReport struct {
	DBVersion string `json:"dbVersion"`
	// DBChanged: the DB version differs from the one before the reload.
	DBChanged bool `json:"dbChanged"`
	// Artifacts live or in flight that were judged again.
	Checked int `json:"checked"`
	// Scanned from their stored SBOM (the others came from the cache).
	Scanned int `json:"scanned"`
	// Missing: no stored SBOM, so the artifact could not be re-scanned.
	Missing []string `json:"missing,omitempty"`
	// Failed: the SBOM scan failed; the earlier verdict stands.
	Failed []string `json:"failed,omitempty"`
	// Anomalies published for live artifacts, blocked verdicts for
	// in-flight ones.
	Anomalies []string `json:"anomalies,omitempty"`
	Blocked   []string `json:"blocked,omitempty"`
}

// Refresh reloads the vulnerability DB and, when its version changed (or
// force is set), re-scans what is live and in flight. It is what both the
// periodic DB check and POST /scanner/rescan call.
func (p *Pipeline) Refresh(ctx context.Context, force bool) (RescanReport, error) {
	p.rescanMu.Lock()
	defer p.rescanMu.Unlock()
	if p.opts.DBDir != "" {
		p.dbFiles = statDB(p.opts.DBDir)
	}
	before, after, err := p.db.Reload()
	if err != nil {
		return RescanReport{}, fmt.Errorf("reload vulnerability DB: %w", err)
	}
	changed := before != after
	if !changed && !force {
		return RescanReport{DBVersion: after.String()}, nil
	}
	r, err := p.rescan(ctx)
	r.DBChanged = changed
	return r, err
}

// CheckDB reloads and re-scans if the DB files changed since the last
// check: the periodic detection of a new DB. It is cheap when nothing
// changed (two stat calls).
func (p *Pipeline) CheckDB(ctx context.Context) (RescanReport, bool, error) {
	p.rescanMu.Lock()
	unchanged := p.opts.DBDir == "" || statDB(p.opts.DBDir).same(p.dbFiles)
	p.rescanMu.Unlock()
	if unchanged {
		return RescanReport{}, false, nil
	}
	r, err := p.Refresh(ctx, false)
	return r, true, err
}

// WatchDB runs CheckDB every interval until ctx ends.
func (p *Pipeline) WatchDB(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r, changed, err := p.CheckDB(ctx)
		switch {
		case err != nil:
			p.log.Error("vulnerability DB check", "err", err)
		case changed:
			p.log.Info("vulnerability DB files changed", "db_version", r.DBVersion, "db_changed", r.DBChanged,
				"checked", r.Checked, "anomalies", len(r.Anomalies), "blocked", len(r.Blocked))
		}
	}
}

// rescan judges every live and in-flight artifact again under the current
// DB, from its stored SBOM: no image is pulled. A blocking finding on a
// live artifact publishes an anomaly against the release (the deployer
// rolls back to the previous clean release); on an in-flight candidate, a
// blocked verdict (the deployer halts it).
func (p *Pipeline) rescan(ctx context.Context) (RescanReport, error) {
	r := RescanReport{DBVersion: p.db.Version().String()}
	apps, err := p.targets.all(ctx)
	if err != nil {
		return r, err
	}
	var errs []error
	for _, at := range apps {
		if at.Live != nil {
			errs = append(errs, p.rescanOne(ctx, &r, at, *at.Live, true))
		}
		if at.InFlight != nil && (at.Live == nil || at.InFlight.Artifact != at.Live.Artifact) {
			errs = append(errs, p.rescanOne(ctx, &r, at, *at.InFlight, false))
		}
	}
	p.log.Info("zero-day re-scan done", "db_version", r.DBVersion, "checked", r.Checked, "scanned", r.Scanned,
		"missing", len(r.Missing), "failed", len(r.Failed), "anomalies", len(r.Anomalies), "blocked", len(r.Blocked))
	return r, errors.Join(errs...)
}

func (p *Pipeline) rescanOne(ctx context.Context, r *RescanReport, at AppTargets, t Tracked, live bool) error {
	r.Checked++
	log := p.log.With("app", at.App, "artifact", t.Artifact, "live", live)
	oci, err := events.ParseOCI(t.Artifact)
	if err != nil {
		r.Failed = append(r.Failed, t.Artifact)
		log.Warn("tracked artifact is not an OCI purl", "err", err)
		return nil
	}
	dbv := p.db.Version()
	key := scan.CacheKey(oci.Digest, dbv)
	c, ok, err := p.cache.get(ctx, key)
	if err != nil {
		return err
	}
	if !ok {
		sbom, err := p.sboms.get(ctx, oci.Digest)
		if errors.Is(err, errNoSBOM) {
			r.Missing = append(r.Missing, t.Artifact)
			log.Warn("no stored SBOM; cannot re-scan without pulling the image", "err", err)
			return nil
		}
		if err != nil {
			return err
		}
		start := time.Now()
		res, err := p.scanner.ScanSBOM(ctx, sbom)
		if err != nil {
			r.Failed = append(r.Failed, t.Artifact)
			p.metrics.scans.WithLabelValues("sbom", string(gate.Error)).Inc()
			log.Error("SBOM re-scan failed; the earlier verdict stands", "err", err)
			return nil
		}
		p.metrics.scanSeconds.WithLabelValues("sbom").Observe(time.Since(start).Seconds())
		r.Scanned++
		c = cachedScan{Digest: oci.Digest, DBVersion: res.DBVersion.String(), OS: res.OS, Packages: res.Packages,
			Findings: res.Findings, SBOMRef: SBOMRef(oci.Digest), ScannedAt: p.opts.Now().UTC()}
		if err := p.cache.put(ctx, scan.CacheKey(oci.Digest, res.DBVersion), c); err != nil {
			log.Warn("re-scan not cached", "err", err)
		}
	}
	dec := p.opts.Gate.Evaluate(c.Findings, p.opts.Now())
	p.metrics.scans.WithLabelValues("sbom", string(dec.Outcome)).Inc()
	if dec.Outcome != gate.Blocked {
		return nil
	}
	env := at.Environment
	if env == "" {
		env = "default"
	}
	meta := events.Meta{Source: p.opts.Source, ChainID: t.ChainID, CausedBy: t.EventID, App: at.App}
	if live {
		meta.ID = eventID("rescan-anomaly", t.Artifact, c.DBVersion, dec.PolicyVersion)
		ev, err := events.NewAnomaly(meta, events.Anomaly{
			Target: events.TargetRelease, App: at.App, Environment: env, ArtifactID: t.Artifact, RolloutID: t.RolloutID,
			Rule: "cve", Origin: "scanner", DetectedAt: p.opts.Now().UTC(),
			Description: "live release has blocking findings after a vulnerability DB update: " + blockingSummary(dec.Blocking),
		})
		if err != nil {
			return fmt.Errorf("anomaly for %s: %w", t.Artifact, err)
		}
		if err := p.publish(ctx, "anomaly", ev); err != nil {
			return err
		}
		p.metrics.anomalies.Inc()
		r.Anomalies = append(r.Anomalies, t.Artifact)
		log.Warn("live release now has blocking findings; anomaly published", "findings", blockingSummary(dec.Blocking))
		return nil
	}
	meta.ID = eventID("rescan-verdict", t.Artifact, c.DBVersion, dec.PolicyVersion)
	img := image{purl: t.Artifact, ref: oci.Ref(), digest: oci.Digest, app: at.App, env: env}
	if _, err := p.publishVerdict(ctx, meta, img, c, "re-scan after a vulnerability DB update: "); err != nil {
		return err
	}
	p.metrics.verdicts.WithLabelValues(string(gate.Blocked), "rescan").Inc()
	r.Blocked = append(r.Blocked, t.Artifact)
	log.Warn("in-flight candidate now has blocking findings; blocked verdict published", "findings", blockingSummary(dec.Blocking))
	return nil
}

// blockingSummary names the blocking findings, most severe first.
func blockingSummary(fs []finding.Finding) string {
	var ids []string
	seen := map[string]bool{}
	for _, f := range fs {
		s := fmt.Sprintf("%s (%s) in %s %s", f.ID, f.Severity, f.Package, f.InstalledVersion)
		if !seen[s] {
			seen[s] = true
			ids = append(ids, s)
		}
	}
	if len(ids) > maxReasons {
		ids = append(ids[:maxReasons:maxReasons], fmt.Sprintf("and %d more", len(ids)-maxReasons))
	}
	return strings.Join(ids, "; ")
}

// fileState fingerprints the DB files, to notice a new DB without hashing
// it: a refresh replaces the files (new inode, size or time).
type fileState []os.FileInfo

func statDB(dir string) fileState {
	var s fileState
	for _, name := range []string{"trivy.db", "metadata.json"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			fi = nil
		}
		s = append(s, fi)
	}
	return s
}

func (s fileState) same(o fileState) bool {
	if len(s) != len(o) {
		return false
	}
	for i := range s {
		a, b := s[i], o[i]
		if a == nil || b == nil {
			if a != b {
				return false
			}
			continue
		}
		if !os.SameFile(a, b) || a.Size() != b.Size() || !a.ModTime().Equal(b.ModTime()) {
			return false
		}
	}
	return true
}
