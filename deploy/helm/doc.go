// Package helm holds the tests of the Rampart Helm chart in rampart/: helm
// lint and template, values.schema.json, restricted Pod Security, one
// ServiceAccount and NetworkPolicy per service, and the rendered objects
// applied to a real kube-apiserver (pkg/kubetest), where RBAC is checked
// with the ServiceAccounts' own tokens.
package helm
