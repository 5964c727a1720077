package imagescan

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy/finding"
	"github.com/rampartci/rampart/pkg/policy/gate"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/services/scanner/internal/scan"
)

// image is one pushed image being judged.
type image struct {
	purl   string // the artifact id verdicts name
	ref    string // host/repository@digest, what is pulled
	digest string
	app    string
	env    string
}

// handleArtifact scans a pushed image, or serves its cached scan, and
// publishes the SBOM and the signed verdict. The steps, in order:
//
//  1. decode the event and find the image's application (bad events are
//     poison);
//  2. look the digest up in the verdict cache at the current DB version; a
//     hit is judged and published without calling Trivy;
//  3. pull and scan; a pull failure is retried (NakWithDelay) until
//     PullAttempts deliveries failed, then it is an "error" verdict, as is a
//     scan that fails: an image that was not scanned never passes;
//  4. store the SBOM, cache the findings, publish the SBOM event and the
//     verdict.
func (p *Pipeline) handleArtifact(ctx context.Context, d bus.Delivery) error {
	a, err := events.ArtifactOf(d.Event)
	if err != nil {
		return bus.Poison(err)
	}
	oci, err := events.ParseOCI(a.Purl)
	if err != nil {
		return bus.Poison(fmt.Errorf("artifact %s: %w", d.Event.ID(), err))
	}
	img := image{purl: a.Purl, ref: oci.Ref(), digest: oci.Digest}
	img.app, img.env = p.appFor(oci.RepositoryURL)
	meta := events.Meta{Source: p.opts.Source, ChainID: events.ChainID(d.Event), CausedBy: d.Event.ID(), App: img.app}
	log := p.log.With("image", img.ref, "app", img.app, "event", d.Event.ID())

	if c, ok, err := p.cache.get(ctx, scan.CacheKey(img.digest, p.db.Version())); err != nil {
		log.Warn("verdict cache unavailable; scanning", "err", err)
	} else if ok {
		p.metrics.cacheHits.Inc()
		meta.ID = eventID("verdict", d.Event.ID())
		out, err := p.publishVerdict(ctx, meta, img, c, "")
		if err == nil {
			p.metrics.verdicts.WithLabelValues(out, "cache").Inc()
			log.Info("verdict served from cache", "outcome", out, "db_version", c.DBVersion)
		}
		return err
	}

	stop := d.KeepAlive(ctx) // a scan can outlast AckWait
	start := time.Now()
	res, err := p.scanner.ScanImage(ctx, img.ref)
	stop()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("scan %s interrupted: %w", img.ref, err) // shutting down: redelivered later
		}
		if errors.Is(err, scan.ErrPull) && d.Attempt < uint64(p.opts.PullAttempts) {
			log.Warn("image pull failed; will retry", "attempt", d.Attempt, "of", p.opts.PullAttempts, "err", err)
			return fmt.Errorf("pull attempt %d of %d: %w", d.Attempt, p.opts.PullAttempts, err)
		}
		p.metrics.scans.WithLabelValues("image", string(gate.Error)).Inc()
		log.Error("image could not be scanned; verdict is error", "attempts", d.Attempt, "err", err)
		return p.publishError(ctx, meta, d.Event.ID(), img, err)
	}
	p.metrics.scanSeconds.WithLabelValues("image").Observe(time.Since(start).Seconds())

	sbomRef, err := p.sboms.put(ctx, img.digest, res.SBOM)
	if err != nil {
		return err // the bus is the problem, not the image: retry
	}
	c := cachedScan{Digest: img.digest, DBVersion: res.DBVersion.String(), OS: res.OS, Packages: res.Packages,
		Findings: res.Findings, SBOMRef: sbomRef, ScannedAt: p.opts.Now().UTC()}
	if err := p.cache.put(ctx, scan.CacheKey(img.digest, res.DBVersion), c); err != nil {
		log.Warn("verdict not cached", "err", err)
	}
	meta.ID = eventID("verdict", d.Event.ID())
	sbom, err := events.NewTestOutput(events.Meta{ID: eventID("sbom", d.Event.ID()), Source: p.opts.Source,
		ChainID: meta.ChainID, CausedBy: d.Event.ID(), App: img.app},
		events.TestOutput{Target: img.purl, OutputType: "report", Format: "application/vnd.cyclonedx+json", URI: sbomRef, ScanID: meta.ID})
	if err != nil {
		return bus.Poison(err)
	}
	if err := p.publish(ctx, "SBOM event", sbom); err != nil {
		return err
	}
	out, err := p.publishVerdict(ctx, meta, img, c, "")
	if err != nil {
		return err
	}
	p.metrics.scans.WithLabelValues("image", out).Inc()
	p.metrics.verdicts.WithLabelValues(out, "scan").Inc()
	log.Info("image scanned", "outcome", out, "critical", res.Counts.Critical, "high", res.Counts.High,
		"packages", res.Packages, "duration", res.Duration, "db_version", c.DBVersion)
	return nil
}

// publishVerdict judges a scan's findings under the gate policy now and
// publishes the signed verdict. prefix, when set, leads the reason (e.g.
// that this is a re-scan). It returns the outcome.
func (p *Pipeline) publishVerdict(ctx context.Context, meta events.Meta, img image, c cachedScan, prefix string) (string, error) {
	dec := p.opts.Gate.Evaluate(c.Findings, p.opts.Now())
	s := events.Scan{
		Target:        img.purl,
		TargetKind:    "image",
		Environment:   img.env,
		Outcome:       string(dec.Outcome),
		Reason:        prefix + reason(dec.Reasons),
		Counts:        counts(finding.Count(c.Findings)),
		Findings:      top(c.Findings, p.opts.TopFindings),
		SBOMRef:       c.SBOMRef,
		DBVersion:     c.DBVersion,
		PolicyVersion: dec.PolicyVersion,
		Waivers:       dec.WaiverRecords(),
	}
	var err error
	if s.Attestations, err = p.attestations(ctx, meta, img, &c, dec); err != nil {
		return "", bus.Poison(fmt.Errorf("attest verdict: %w", err))
	}
	ev, err := events.SignScan(meta, s, p.opts.Key)
	if err != nil {
		return "", bus.Poison(fmt.Errorf("sign verdict: %w", err))
	}
	return s.Outcome, p.publish(ctx, "verdict", ev)
}

// publishError publishes the "error" verdict of an image that could not be
// pulled or scanned. It is not cached: the next push tries again.
func (p *Pipeline) publishError(ctx context.Context, meta events.Meta, pushID string, img image, scanErr error) error {
	dec := gate.ScanFailed(scanErr, p.opts.Gate.Version)
	meta.ID = eventID("verdict", pushID)
	att, err := p.attestations(ctx, meta, img, nil, dec)
	if err != nil {
		return bus.Poison(fmt.Errorf("attest verdict: %w", err))
	}
	ev, err := events.SignScan(meta, events.Scan{
		Target:        img.purl,
		TargetKind:    "image",
		Environment:   img.env,
		Outcome:       string(dec.Outcome),
		Reason:        reason(dec.Reasons),
		DBVersion:     p.db.Version().String(),
		PolicyVersion: dec.PolicyVersion,
		Attestations:  att,
	}, p.opts.Key)
	if err != nil {
		return bus.Poison(fmt.Errorf("sign verdict: %w", err))
	}
	if err := p.publish(ctx, "error verdict", ev); err != nil {
		return err
	}
	p.metrics.verdicts.WithLabelValues(string(dec.Outcome), "scan").Inc()
	return nil
}

// maxReasons bounds the reasons spelled out in a verdict; the findings and
// counts carry the rest.
const maxReasons = 5

// reason joins a decision's reasons into one line.
func reason(rs []string) string {
	if len(rs) > maxReasons {
		rs = append(rs[:maxReasons:maxReasons], fmt.Sprintf("and %d more", len(rs)-maxReasons))
	}
	return strings.Join(rs, "; ")
}

// counts is the verdict's counts by severity, lower-case, non-zero only.
func counts(c finding.Counts) map[string]int {
	m := map[string]int{}
	for k, v := range map[string]int{"critical": c.Critical, "high": c.High, "medium": c.Medium, "low": c.Low, "unknown": c.Unknown} {
		if v > 0 {
			m[k] = v
		}
	}
	return m
}

// top converts the n most severe findings for the verdict.
func top(fs []finding.Finding, n int) []events.Finding {
	var out []events.Finding
	for _, f := range finding.Top(fs, n) {
		out = append(out, events.Finding{ID: f.ID, Package: f.Package, InstalledVersion: f.InstalledVersion,
			FixedVersion: f.FixedVersion, Severity: f.Severity.String(), Title: f.Title})
	}
	return out
}
