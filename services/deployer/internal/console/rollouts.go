package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/webhook"
	"github.com/rampartci/rampart/services/deployer/adminapi"
)

// perApp is how many rollouts of each application the page lists.
const perApp = 8

// rolloutView is one rollout as a card shows it.
type rolloutView struct {
	adminapi.Rollout
	DOMID          string
	Version        string
	StableVersion  string
	StepOf         string    // "2 of 4"
	NextStep       time.Time // zero when no step follows on its own
	Rules          []ruleView
	Actions        []adminapi.Action // what the session may do now
	RolledBackRule string
}

// ruleView is one analysis rule: its limit from the policy and, when it
// fired, the value the watcher observed.
type ruleView struct {
	Name, Limit, Observed string
	Breached              bool
}

// appView is one application's section.
type appView struct {
	Name, Environment string
	Rollouts          []rolloutView
}

func (c *Console) view(r adminapi.Rollout, role Role) rolloutView {
	v := rolloutView{Rollout: r, DOMID: "rollout-" + r.ID, Version: version(r.Artifact), StableVersion: version(r.Stable)}
	if r.Step >= 0 && r.Step < len(r.Steps) {
		v.StepOf = strconv.Itoa(r.Step+1) + " of " + strconv.Itoa(len(r.Steps))
		if r.Phase == adminapi.PhaseProgressing && r.Step < len(r.Steps)-1 && !r.StepStartedAt.IsZero() {
			v.NextStep = r.StepStartedAt.Add(r.Pause)
		}
	}
	if app, ok := c.opts.Policy.Current().App(r.App); ok {
		v.Rules = rules(app.Analysis, r.Trigger)
	}
	if role >= RoleOperator {
		switch r.Phase {
		case adminapi.PhaseProgressing:
			v.Actions = []adminapi.Action{adminapi.ActionPause, adminapi.ActionPromote, adminapi.ActionAbort}
		case adminapi.PhasePaused:
			v.Actions = []adminapi.Action{adminapi.ActionResume, adminapi.ActionPromote, adminapi.ActionAbort}
		}
	}
	return v
}

// rules lists the analysis rules of a policy with their limits; the one
// that triggered a rollback gets the observed value.
func rules(a policy.Analysis, trigger *events.Anomaly) []ruleView {
	var out []ruleView
	if a.ErrorRate.Max > 0 {
		out = append(out, ruleView{Name: "http-5xx-ratio", Limit: fmt.Sprintf("≤ %s of requests (from %d requests)", percent(a.ErrorRate.Max), a.ErrorRate.MinRequests)})
	}
	if a.Memory.MaxRatio > 0 {
		out = append(out, ruleView{Name: "memory-ratio", Limit: fmt.Sprintf("≤ %.2f× the stable version", a.Memory.MaxRatio)})
	}
	if a.SIEM.Enabled {
		out = append(out, ruleView{Name: "siem", Limit: "no alert"})
	}
	if trigger == nil {
		return out
	}
	i := slices.IndexFunc(out, func(r ruleView) bool { return r.Name == trigger.Rule })
	if i < 0 {
		out = append(out, ruleView{Name: trigger.Rule, Limit: "—"})
		i = len(out) - 1
	}
	out[i].Breached = true
	switch {
	case trigger.Observed != nil && trigger.Rule == "http-5xx-ratio":
		out[i].Observed = percent(*trigger.Observed)
	case trigger.Observed != nil:
		out[i].Observed = strconv.FormatFloat(*trigger.Observed, 'g', 4, 64)
	default:
		out[i].Observed = trigger.Description
	}
	return out
}

func percent(f float64) string { return strconv.FormatFloat(100*f, 'f', 2, 64) + "%" }

// version is the tag (or short digest) of an OCI purl, else the purl.
func version(purl string) string {
	if purl == "" {
		return ""
	}
	o, err := events.ParseOCI(purl)
	switch {
	case err != nil:
		return purl
	case o.Tag != "":
		return o.Tag
	case len(o.Digest) > 19:
		return o.Digest[:19]
	}
	return o.Digest
}

func (c *Console) rolloutsPage(w http.ResponseWriter, r *http.Request, role Role) {
	list, err := c.opts.Rollouts.List(r.Context())
	if err != nil {
		c.render(w, http.StatusServiceUnavailable, "rollouts", pageData{Title: "Rollouts", Nav: "rollouts", Role: role, Error: "reading the rollouts: " + err.Error()})
		return
	}
	var apps []appView
	index := map[string]int{}
	for _, a := range c.opts.Policy.Current().Apps {
		index[a.Name] = len(apps)
		apps = append(apps, appView{Name: a.Name, Environment: a.Environment})
	}
	for _, ro := range list { // newest first
		i, ok := index[ro.App]
		if !ok {
			index[ro.App] = len(apps)
			i = len(apps)
			apps = append(apps, appView{Name: ro.App, Environment: ro.Environment})
		}
		if len(apps[i].Rollouts) < perApp {
			apps[i].Rollouts = append(apps[i].Rollouts, c.view(ro, role))
		}
	}
	c.render(w, http.StatusOK, "rollouts", pageData{Title: "Rollouts", Nav: "rollouts", Role: role, Data: apps})
}

// update is one rollout's card as the page's script applies it.
type update struct {
	ID   string `json:"id"`
	App  string `json:"app"`
	HTML string `json:"html"`
}

func (c *Console) update(r adminapi.Rollout, role Role) (update, error) {
	html, err := c.fragment("rollouts", "rollout", c.view(r, role))
	return update{ID: "rollout-" + r.ID, App: r.App, HTML: html}, err
}

// heartbeat keeps idle streams open through proxies and finds dead ones.
const heartbeat = 15 * time.Second

// events streams every rollout change as a server-sent event "rollout"
// whose data is an update; on (re)connection it first sends every rollout,
// so a page that missed changes catches up.
func (c *Console) events(w http.ResponseWriter, r *http.Request, role Role) {
	rc := http.NewResponseController(w)
	changes, stop := c.hub.subscribe()
	defer stop()
	list, err := c.opts.Rollouts.List(r.Context())
	if err != nil {
		http.Error(w, "reading the rollouts: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 1000\n\n"); err != nil {
		return
	}
	send := func(ro adminapi.Rollout) error {
		u, err := c.update(ro, role)
		if err != nil {
			return err
		}
		data, err := json.Marshal(u)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "event: rollout\ndata: %s\n\n", data)
		return err
	}
	for _, ro := range slices.Backward(list) { // oldest first: the page prepends
		if send(ro) != nil {
			return
		}
	}
	if rc.Flush() != nil {
		return
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-c.stopping:
			return
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return
			}
		case ro, ok := <-changes:
			if !ok || send(ro) != nil {
				return // dropped for falling behind: the browser reconnects
			}
		}
		if rc.Flush() != nil {
			return
		}
	}
}

// maxActionBody bounds an action's body.
const maxActionBody = 64 << 10

// act applies an operator action, as POST /deployer/rollouts/{id}/{action}
// does, and answers the rollout's new card.
func (c *Console) act(w http.ResponseWriter, r *http.Request, role Role) {
	action := adminapi.Action(r.PathValue("action"))
	if !slices.Contains(adminapi.Actions, action) {
		writeError(w, http.StatusBadRequest, "action "+string(action)+" is not pause, resume, promote or abort")
		return
	}
	var body adminapi.ActionRequest
	raw, err := webhook.ReadBody(r, maxActionBody)
	if err == nil && len(raw) > 0 {
		err = webhook.Decode(raw, &body, true)
	}
	if err != nil {
		writeError(w, webhook.Status(err), err.Error())
		return
	}
	// Only a session of the operator token reaches an action.
	ro, err := c.opts.Rollouts.Act(r.Context(), r.PathValue("id"), action, body.Reason, adminapi.OperatorActor(c.opts.Tokens.Operator, "console"))
	switch {
	case errors.Is(err, adminapi.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case errors.Is(err, adminapi.ErrFinished):
		writeError(w, http.StatusConflict, err.Error())
		return
	case err != nil:
		c.opts.Logger.Error("console: operator action failed", "rollout", r.PathValue("id"), "action", action, "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	c.opts.Logger.Info("console: operator action", "rollout", ro.ID, "action", action, "reason", body.Reason)
	u, err := c.update(ro, role)
	if err != nil {
		c.opts.Logger.Error("console: render a rollout", "rollout", ro.ID, "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, u)
}
