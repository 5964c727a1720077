// Package sampleimage builds small, real OCI images (an Alpine package
// database, Go build info) that the fixture vulnerability DB knows about,
// and serves them from an in-memory registry that sends Distribution push
// notifications. The scanner's tests use it, and so does `rampart demo`,
// which needs images whose scan outcome is known in advance.
package sampleimage

import "github.com/rampartci/rampart/services/scanner/internal/imagetest"

// Image, its parts and the registry are the scanner's test image builder.
type (
	Image           = imagetest.Image
	Package         = imagetest.Package
	GoBinary        = imagetest.GoBinary
	Module          = imagetest.Module
	Registry        = imagetest.Registry
	RegistryOptions = imagetest.RegistryOptions
	ManifestPut     = imagetest.ManifestPut
	Pushed          = imagetest.Pushed
)

// StartRegistry serves an in-memory OCI registry on 127.0.0.1.
func StartRegistry(opts RegistryOptions) *Registry { return imagetest.StartRegistry(opts) }

// CleanAlpine is an Alpine image with no known vulnerability in the fixture DB.
func CleanAlpine() Image { return imagetest.CleanAlpine() }

// VulnerableAlpine is an Alpine image with a Critical openssl CVE and a High
// Go module CVE in the fixture DB.
func VulnerableAlpine() Image { return imagetest.VulnerableAlpine() }
