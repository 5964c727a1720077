package helm_test

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestLint(t *testing.T) {
	values := []string{"-f", "testdata/values.yaml"}
	for name, extra := range map[string][]string{
		"default values":      nil,
		"test values":         values,
		"monitoring forced":   append(values, "--set", "monitoring.serviceMonitor=true,monitoring.prometheusRule=true"),
		"external NATS":       append(values, "--set", "nats.enabled=false,nats.url=nats://nats.example:4222"),
		"single-node NATS":    append(values, "--set", "nats.replicas=1"),
		"gate policy, digest": append(values, "--set", "scanner.gatePolicy=version: 1", "--set", "image.digests.scanner=sha256:"+strings.Repeat("ab", 32)),
		"DB on a claim":       append(values, "--set", "scanner.cache.existingClaim=trivy-db"),
		"fixture DB":          append(values, "--set", "scanner.fixtureDB=true"),
	} {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"lint", "--strict", chartDir, "--namespace", namespace}, extra...)
			if out, err := helm(t, args...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// TestPodSecurity checks every pod the chart runs against the restricted
// Pod Security Standard field by field (the apiserver's own check is in
// TestApply) plus what the chart promises beyond it.
func TestPodSecurity(t *testing.T) {
	objs := render(t)
	workloads := ofKind(objs, "Deployment", "StatefulSet")
	if len(workloads) != len(services)+1 {
		t.Fatalf("rendered %d workloads, want the %d services and NATS", len(workloads), len(services))
	}
	for _, o := range workloads {
		t.Run(o.GetName(), func(t *testing.T) {
			pod := podTemplate(t, o)
			ps := pod.Spec.SecurityContext
			if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot {
				t.Error("pod securityContext.runAsNonRoot is not true")
			}
			if ps == nil || ps.RunAsUser == nil || *ps.RunAsUser == 0 {
				t.Error("pod securityContext.runAsUser is not a non-root uid")
			}
			if ps == nil || ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Error("pod seccompProfile is not RuntimeDefault")
			}
			if pod.Spec.HostNetwork || pod.Spec.HostPID || pod.Spec.HostIPC {
				t.Error("pod shares a host namespace")
			}
			for _, v := range pod.Spec.Volumes {
				if v.HostPath != nil {
					t.Errorf("volume %s is a hostPath", v.Name)
				}
			}
			cs := append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...)
			for _, c := range cs {
				sc := c.SecurityContext
				switch {
				case sc == nil:
					t.Errorf("container %s: no securityContext", c.Name)
					continue
				case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
					t.Errorf("container %s: allowPrivilegeEscalation is not false", c.Name)
				case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
					t.Errorf("container %s: readOnlyRootFilesystem is not true", c.Name)
				case sc.Privileged != nil && *sc.Privileged:
					t.Errorf("container %s: privileged", c.Name)
				case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
					t.Errorf("container %s: capabilities are not drop [ALL], add none", c.Name)
				case sc.RunAsUser != nil && *sc.RunAsUser == 0:
					t.Errorf("container %s: runs as root", c.Name)
				}
				for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					if _, ok := c.Resources.Requests[res]; !ok {
						t.Errorf("container %s: no %s request", c.Name, res)
					}
					if _, ok := c.Resources.Limits[res]; !ok {
						t.Errorf("container %s: no %s limit", c.Name, res)
					}
				}
				for _, p := range c.Ports {
					if p.HostPort != 0 {
						t.Errorf("container %s: host port %d", c.Name, p.HostPort)
					}
				}
			}
		})
	}
}

// TestServices checks what each of the five services gets: its own
// ServiceAccount, probes on the HTTP port, its secrets by reference, a
// PodDisruptionBudget and its own NetworkPolicy.
func TestServices(t *testing.T) {
	objs := render(t)
	if s := ofKind(objs, "Secret"); len(s) > 0 {
		t.Errorf("the chart renders Secrets (%s): secrets must come from existing ones", s[0].GetName())
	}
	accounts := map[string]string{}
	for _, svc := range services {
		t.Run(svc, func(t *testing.T) {
			name := fullname + "-" + svc
			d := into[appsv1.Deployment](t, find(t, objs, "Deployment", name).Object)
			pod := d.Spec.Template.Spec
			if pod.ServiceAccountName != name {
				t.Errorf("serviceAccountName %q, want %q", pod.ServiceAccountName, name)
			}
			if other, ok := accounts[pod.ServiceAccountName]; ok {
				t.Errorf("shares ServiceAccount %s with %s", pod.ServiceAccountName, other)
			}
			accounts[pod.ServiceAccountName] = svc
			find(t, objs, "ServiceAccount", name)
			automount := pod.AutomountServiceAccountToken != nil && *pod.AutomountServiceAccountToken
			if automount != (svc == "deployer") {
				t.Errorf("automountServiceAccountToken %v: only the deployer talks to the Kubernetes API", automount)
			}

			c := pod.Containers[0]
			if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.LivenessProbe.HTTPGet.Port.String() != "http" {
				t.Errorf("liveness probe %+v, want GET /healthz on the http port", c.LivenessProbe)
			}
			if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.ReadinessProbe.HTTPGet.Port.String() != "http" {
				t.Errorf("readiness probe %+v, want GET /readyz on the http port", c.ReadinessProbe)
			}
			env := map[string]corev1.EnvVar{}
			for _, e := range c.Env {
				env[e.Name] = e
			}
			if got := env["RAMPART_NATS"].Value; got != "nats://"+fullname+"-nats."+namespace+".svc:4222" {
				t.Errorf("RAMPART_NATS %q", got)
			}
			if got := env["RAMPART_STREAM_REPLICAS"].Value; got != "3" {
				t.Errorf("RAMPART_STREAM_REPLICAS %q, want 3 on the 3-node cluster", got)
			}
			if got := env["RAMPART_POLICY"].Value; got != "/etc/rampart/policy/rampart.yaml" {
				t.Errorf("RAMPART_POLICY %q", got)
			}
			for _, e := range c.Env {
				if e.Value != "" && strings.Contains(e.Value, "secret") && !strings.HasPrefix(e.Name, "RAMPART_") {
					t.Errorf("env %s=%q", e.Name, e.Value)
				}
			}

			pdb := find(t, objs, "PodDisruptionBudget", name)
			if sel, _, _ := unstructured.NestedStringMap(pdb.Object, "spec", "selector", "matchLabels"); !selects(sel, d.Spec.Template.Labels) {
				t.Errorf("PodDisruptionBudget selects %v, not the pods %v", sel, d.Spec.Template.Labels)
			}

			np := into[networkingv1.NetworkPolicy](t, find(t, objs, "NetworkPolicy", name).Object)
			if !selects(np.Spec.PodSelector.MatchLabels, d.Spec.Template.Labels) {
				t.Errorf("NetworkPolicy selects %v, not the pods %v", np.Spec.PodSelector.MatchLabels, d.Spec.Template.Labels)
			}
			checkNetworkPolicy(t, svc, np)
		})
	}
	t.Run("secret flags by reference", func(t *testing.T) {
		want := map[string]map[string]string{
			"scanner": {
				"RAMPART_VERDICT_KEY":            "/etc/rampart/secrets/verdict-key",
				"RAMPART_REGISTRY_WEBHOOK_TOKEN": "file:/etc/rampart/secrets/registry-webhook-token",
				"RAMPART_GITHUB_WEBHOOK_SECRET":  "file:/etc/rampart/secrets/github-webhook-secret",
			},
			"deployer": {
				"RAMPART_SCANNER_KEY":      "/etc/rampart/secrets/scanner-key",
				"RAMPART_ADMIN_TOKEN_FILE": "/etc/rampart/secrets/admin-token",
			},
			"watcher": {
				"RAMPART_ALERTMANAGER_TOKEN": "file:/etc/rampart/secrets/alertmanager-token",
				"RAMPART_SIEM_SECRET":        "file:/etc/rampart/secrets/siem-secret",
			},
			"ledger": {"RAMPART_LEDGER_KEY": "/var/lib/rampart/ledger/ledger.key"},
		}
		for svc, vars := range want {
			d := into[appsv1.Deployment](t, find(t, objs, "Deployment", fullname+"-"+svc).Object)
			for name, value := range vars {
				if got := envValue(d.Spec.Template.Spec.Containers[0].Env, name); got != value {
					t.Errorf("%s: %s=%q, want %q", svc, name, got, value)
				}
			}
		}
		d := into[appsv1.Deployment](t, find(t, objs, "Deployment", fullname+"-notifier").Object)
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			if e.Name == "RAMPART_PAGERDUTY_ROUTING_KEY" && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != "rampart-notify") {
				t.Errorf("notifier: %s is not from Secret rampart-notify: %+v", e.Name, e)
			}
		}
	})
}

func envValue(env []corev1.EnvVar, name string) string {
	for _, e := range env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// selects reports whether selector matches labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// checkNetworkPolicy checks one service's policy: both directions
// governed, DNS and NATS out, ingress to the HTTP port only for the
// services that take webhooks or operators (and for metrics scrapers).
func checkNetworkPolicy(t *testing.T, svc string, np *networkingv1.NetworkPolicy) {
	t.Helper()
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Errorf("policyTypes %v, want Ingress and Egress", np.Spec.PolicyTypes)
	}
	open := false // ingress from anyone
	for _, r := range np.Spec.Ingress {
		if len(r.Ports) != 1 || r.Ports[0].Port == nil || r.Ports[0].Port.String() != "http" {
			t.Errorf("ingress rule %+v opens more than the http port", r)
		}
		open = open || len(r.From) == 0
	}
	if wantOpen := svc == "scanner" || svc == "watcher" || svc == "deployer"; open != wantOpen {
		t.Errorf("ingress from anyone: %v, want %v", open, wantOpen)
	}
	var nats, dns bool
	for _, r := range np.Spec.Egress {
		for _, p := range r.Ports {
			switch p.Port.IntValue() {
			case 4222:
				nats = len(r.To) == 1 && r.To[0].PodSelector != nil && r.To[0].PodSelector.MatchLabels["app.kubernetes.io/component"] == "nats"
			case 53:
				dns = len(r.To) == 1
			}
		}
	}
	if !nats || !dns {
		t.Errorf("egress: NATS pods only %v, DNS %v; want both", nats, dns)
	}
}

// TestNetworkPolicyDefaultDeny checks the release's pods are denied both
// ways unless a policy opens a path.
func TestNetworkPolicyDefaultDeny(t *testing.T) {
	objs := render(t)
	np := into[networkingv1.NetworkPolicy](t, find(t, objs, "NetworkPolicy", fullname+"-default-deny").Object)
	if len(np.Spec.Ingress) > 0 || len(np.Spec.Egress) > 0 || len(np.Spec.PolicyTypes) != 2 {
		t.Errorf("default deny %+v opens something", np.Spec)
	}
	for _, o := range ofKind(objs, "Deployment", "StatefulSet") {
		if pod := podTemplate(t, o); !selects(np.Spec.PodSelector.MatchLabels, pod.Labels) {
			t.Errorf("default deny does not select %s", o.GetName())
		}
	}
	nats := into[networkingv1.NetworkPolicy](t, find(t, objs, "NetworkPolicy", fullname+"-nats").Object)
	for _, r := range nats.Spec.Ingress {
		if len(r.From) == 0 {
			t.Errorf("NATS ingress %+v is open to anyone", r)
		}
	}
}

// TestRBACRendered checks only the deployer is bound to a Role, only in
// the namespaces the values name, and no rule has a wildcard.
func TestRBACRendered(t *testing.T) {
	objs := render(t)
	if c := ofKind(objs, "ClusterRole", "ClusterRoleBinding"); len(c) > 0 {
		t.Errorf("the chart renders cluster-wide RBAC: %s", c[0].GetName())
	}
	roles := ofKind(objs, "Role")
	if len(roles) != 1 || roles[0].GetNamespace() != appNamespace {
		t.Fatalf("%d Roles, want one in %s", len(roles), appNamespace)
	}
	for _, o := range roles {
		r := into[rbacv1.Role](t, o.Object)
		for _, rule := range r.Rules {
			for _, s := range slices.Concat(rule.Verbs, rule.APIGroups, rule.Resources, rule.ResourceNames, rule.NonResourceURLs) {
				if strings.Contains(s, "*") {
					t.Errorf("Role %s/%s has a wildcard: %+v", r.Namespace, r.Name, rule)
				}
			}
			if !slices.Equal(rule.Verbs, []string{"get", "patch"}) {
				t.Errorf("Role %s rule %+v: want verbs get and patch", r.Name, rule)
			}
		}
	}
	for _, o := range ofKind(objs, "RoleBinding") {
		b := into[rbacv1.RoleBinding](t, o.Object)
		for _, s := range b.Subjects {
			if s.Kind != "ServiceAccount" || s.Name != fullname+"-deployer" || s.Namespace != namespace {
				t.Errorf("RoleBinding %s binds %+v: only the deployer may have a Role", b.Name, s)
			}
		}
	}
}

// TestNATS checks the JetStream cluster: 3 nodes, a volume each, routes
// between them, the file store on the volume.
func TestNATS(t *testing.T) {
	objs := render(t)
	ss := into[appsv1.StatefulSet](t, find(t, objs, "StatefulSet", fullname+"-nats").Object)
	if ss.Spec.Replicas == nil || *ss.Spec.Replicas != 3 {
		t.Errorf("NATS replicas %v, want 3", ss.Spec.Replicas)
	}
	if len(ss.Spec.VolumeClaimTemplates) != 1 || ss.Spec.VolumeClaimTemplates[0].Name != "data" {
		t.Errorf("volumeClaimTemplates %+v, want one named data", ss.Spec.VolumeClaimTemplates)
	}
	conf, _, _ := unstructured.NestedString(find(t, objs, "ConfigMap", fullname+"-nats").Object, "data", "nats.conf")
	for _, want := range []string{
		"store_dir: /data",
		"nats://" + fullname + "-nats-0." + fullname + "-nats-headless." + namespace + ".svc.cluster.local:6222",
		"nats://" + fullname + "-nats-2." + fullname + "-nats-headless." + namespace + ".svc.cluster.local:6222",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("nats.conf lacks %q:\n%s", want, conf)
		}
	}
	find(t, objs, "PodDisruptionBudget", fullname+"-nats")
	find(t, objs, "ServiceAccount", fullname+"-nats")
}

// TestMonitoring checks the Prometheus Operator objects render only when
// the cluster serves their API, or when a value forces them.
func TestMonitoring(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want int
	}{
		"no API":            {nil, 0},
		"API served":        {[]string{"--api-versions", "monitoring.coreos.com/v1"}, 2},
		"API served, off":   {[]string{"--api-versions", "monitoring.coreos.com/v1", "--set", "monitoring.serviceMonitor=false,monitoring.prometheusRule=false"}, 0},
		"no API, forced":    {[]string{"--set", "monitoring.serviceMonitor=true,monitoring.prometheusRule=true"}, 2},
		"no API, rule only": {[]string{"--set", "monitoring.prometheusRule=true"}, 1},
	} {
		t.Run(name, func(t *testing.T) {
			if got := len(ofKind(render(t, tc.args...), "ServiceMonitor", "PrometheusRule")); got != tc.want {
				t.Errorf("%d monitoring objects, want %d", got, tc.want)
			}
		})
	}
}

// TestValuesRefused checks values.schema.json and the templates refuse
// values that would install something unsafe or mistyped.
func TestValuesRefused(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"inline secret":        {[]string{"--set", "deployer.secrets.admin-token=hunter2"}, "admin-token"},
		"unknown secret flag":  {[]string{"--set", "watcher.secrets.password.name=x,watcher.secrets.password.key=y"}, "password"},
		"unknown service key":  {[]string{"--set", "scanner.replica=2"}, "replica"},
		"unknown top key":      {[]string{"--set", "ingress.enabled=true"}, "ingress"},
		"two NATS nodes":       {[]string{"--set", "nats.replicas=2"}, "replicas"},
		"image tag as digest":  {[]string{"--set", "image.digests.scanner=latest"}, "digests"},
		"bad namespace":        {[]string{"--set", "deployer.rbac.namespaces[0]=Shop_1"}, "namespaces"},
		"secret without a key": {[]string{"--set", "ledger.secrets.ledger-key.key=null"}, "key"},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := helm(t, templateArgs(tc.args...)...)
			if err == nil {
				t.Fatalf("rendered:\n%.400s", out)
			}
			if msg := err.Error(); !strings.Contains(msg, "schema") || !strings.Contains(msg, tc.want) {
				t.Errorf("error does not name the schema and %q: %v", tc.want, err)
			}
		})
	}
	t.Run("required secret missing", func(t *testing.T) {
		_, err := helm(t, "template", release, chartDir, "--namespace", namespace)
		if err == nil || !strings.Contains(err.Error(), "is required: {name: <existing Secret>, key: <key>}") {
			t.Errorf("rendered without the verdict key, or said something else: %v", err)
		}
	})
}

// TestGatePolicyReachesTheDeployer: with a gate policy, the deployer mounts
// the scanner's policy ConfigMap and names it with --gate-policy, so it
// accepts the verification summaries the scanner signs under it.
func TestGatePolicyReachesTheDeployer(t *testing.T) {
	objs := render(t, "--set", "scanner.gatePolicy=block_on: [MEDIUM]")
	cm := fullname + "-scanner-gate"
	find(t, objs, "ConfigMap", cm)
	for _, svc := range []string{"scanner", "deployer"} {
		pod := into[appsv1.Deployment](t, find(t, objs, "Deployment", fullname+"-"+svc).Object).Spec.Template.Spec
		var env, mount, volume bool
		for _, e := range pod.Containers[0].Env {
			env = env || e.Name == "RAMPART_GATE_POLICY" && e.Value == "/etc/rampart/gate/gate.yaml"
		}
		for _, m := range pod.Containers[0].VolumeMounts {
			mount = mount || m.Name == "gate" && m.MountPath == "/etc/rampart/gate" && m.ReadOnly
		}
		for _, v := range pod.Volumes {
			volume = volume || v.Name == "gate" && v.ConfigMap != nil && v.ConfigMap.Name == cm
		}
		if !env || !mount || !volume {
			t.Errorf("%s: env %v mount %v volume %v, want all", svc, env, mount, volume)
		}
	}
	plain := into[appsv1.Deployment](t, find(t, render(t), "Deployment", fullname+"-deployer").Object).Spec.Template.Spec
	for _, e := range plain.Containers[0].Env {
		if e.Name == "RAMPART_GATE_POLICY" {
			t.Error("without a gate policy the deployer is given one")
		}
	}
}

// TestConsoleReachesLedgerAndNotifier checks the deployer's console is told
// where the ledger and the notifier serve, and that the network policies
// open exactly that path: the deployer out to their pods, their pods in
// from the deployer only.
func TestConsoleReachesLedgerAndNotifier(t *testing.T) {
	objs := render(t)
	pod := into[appsv1.Deployment](t, find(t, objs, "Deployment", fullname+"-deployer").Object).Spec.Template.Spec
	for env, want := range map[string]string{"RAMPART_LEDGER_URL": "http://" + fullname + "-ledger:8080", "RAMPART_NOTIFIER_URL": "http://" + fullname + "-notifier:8080"} {
		if got := envValue(pod.Containers[0].Env, env); got != want {
			t.Errorf("%s = %q, want %q", env, got, want)
		}
	}
	labels := func(component string) map[string]string {
		return podTemplate(t, find(t, objs, "Deployment", fullname+"-"+component)).Labels
	}
	deployer := into[networkingv1.NetworkPolicy](t, find(t, objs, "NetworkPolicy", fullname+"-deployer").Object)
	for _, peer := range []string{"ledger", "notifier"} {
		out := false
		for _, r := range deployer.Spec.Egress {
			for _, to := range r.To {
				if to.PodSelector != nil && selects(to.PodSelector.MatchLabels, labels(peer)) && len(r.Ports) == 1 && r.Ports[0].Port.IntValue() == 8080 {
					out = true
				}
			}
		}
		in := false
		np := into[networkingv1.NetworkPolicy](t, find(t, objs, "NetworkPolicy", fullname+"-"+peer).Object)
		for _, r := range np.Spec.Ingress {
			for _, from := range r.From {
				if from.PodSelector != nil && selects(from.PodSelector.MatchLabels, labels("deployer")) {
					in = true
				}
				if from.PodSelector != nil && selects(from.PodSelector.MatchLabels, labels("scanner")) {
					t.Errorf("%s takes ingress from the scanner", peer)
				}
			}
		}
		if !out || !in {
			t.Errorf("deployer → %s: egress %v, ingress %v; want both", peer, out, in)
		}
	}
}
