package sampleimage

// The preset images match the advisories in vulndb.Fixtures(): the vulnerable
// one carries openssl 3.5.1-r0 (CVE-2025-9230, Critical, fixed in 3.5.4-r0),
// busybox 1.37.0-r18 (CVE-2025-46394, Medium) and a Go binary built against
// golang.org/x/net v0.15.0 (CVE-2023-44487, High, fixed in 0.17.0); the clean
// one carries the fixed versions.

// Advisory ids the presets are known to trigger with the fixture DB.
const (
	CriticalOpenSSL = "CVE-2025-9230"
	LowOpenSSL      = "CVE-2025-9232"
	MediumBusybox   = "CVE-2025-46394"
	HighXNet        = "CVE-2023-44487"
)

// alpineBase is the package set of alpine:3.22 with the given openssl and
// busybox versions.
func alpineBase(openssl, busybox string) []Package {
	return []Package{
		{Name: "alpine-baselayout", Version: "3.7.0-r0", License: "GPL-2.0-only", Files: []string{"etc/profile.d/color_prompt.sh.disabled"}},
		{Name: "alpine-baselayout-data", Version: "3.7.0-r0", Origin: "alpine-baselayout", License: "GPL-2.0-only", Files: []string{"etc/fstab", "etc/hosts"}},
		{Name: "alpine-keys", Version: "2.5-r0", License: "MIT"},
		{Name: "alpine-release", Version: "3.22.1-r0", Origin: "alpine-base", License: "MIT", Files: []string{"etc/alpine-release", "etc/os-release"}},
		{Name: "apk-tools", Version: "2.14.9-r2", License: "GPL-2.0-only", Files: []string{"sbin/apk"}},
		{Name: "busybox", Version: busybox, License: "GPL-2.0-only", Files: []string{"bin/busybox"}},
		{Name: "busybox-binsh", Version: busybox, Origin: "busybox", License: "GPL-2.0-only", Files: []string{"bin/sh"}},
		{Name: "ca-certificates-bundle", Version: "20250619-r0", Origin: "ca-certificates", License: "MPL-2.0 AND MIT", Files: []string{"etc/ssl/certs/ca-certificates.crt"}},
		{Name: "libapk2", Version: "2.14.9-r2", Origin: "apk-tools", License: "GPL-2.0-only", Files: []string{"lib/libapk.so.2.14.0"}},
		{Name: "libcrypto3", Version: openssl, Origin: "openssl", License: "Apache-2.0", Files: []string{"usr/lib/libcrypto.so.3"}},
		{Name: "libssl3", Version: openssl, Origin: "openssl", License: "Apache-2.0", Files: []string{"usr/lib/libssl.so.3"}},
		{Name: "musl", Version: "1.2.5-r10", License: "MIT", Files: []string{"lib/ld-musl-x86_64.so.1"}},
		{Name: "musl-utils", Version: "1.2.5-r10", Origin: "musl", License: "MIT AND BSD-2-Clause AND GPL-2.0-or-later", Files: []string{"usr/bin/getconf"}},
		{Name: "scanelf", Version: "1.3.8-r1", Origin: "pax-utils", License: "GPL-2.0-only", Files: []string{"usr/bin/scanelf"}},
		{Name: "ssl_client", Version: busybox, Origin: "busybox", License: "GPL-2.0-only", Files: []string{"usr/bin/ssl_client"}},
		{Name: "zlib", Version: "1.3.1-r2", License: "Zlib", Files: []string{"lib/libz.so.1"}},
	}
}

// VulnerableAlpine is an Alpine 3.22 image with a vulnerable openssl and
// busybox and a Go binary depending on a vulnerable golang.org/x/net.
func VulnerableAlpine() Image {
	return Image{
		AlpineRelease: "3.22.1",
		Packages:      alpineBase("3.5.1-r0", "1.37.0-r18"),
		GoBinaries: []GoBinary{{
			Path:      "usr/local/bin/app",
			GoVersion: "go1.26.8",
			Main:      "example.com/app",
			Deps: []Module{
				{Path: "golang.org/x/net", Version: "v0.15.0"},
				{Path: "golang.org/x/text", Version: "v0.13.0"},
			},
		}},
	}
}

// CleanAlpine is the same image with every fixture advisory fixed.
func CleanAlpine() Image {
	return Image{
		AlpineRelease: "3.22.1",
		Packages:      alpineBase("3.5.4-r0", "1.37.0-r19"),
		GoBinaries: []GoBinary{{
			Path:      "usr/local/bin/app",
			GoVersion: "go1.26.8",
			Main:      "example.com/app",
			Deps: []Module{
				{Path: "golang.org/x/net", Version: "v0.17.0"},
				{Path: "golang.org/x/text", Version: "v0.13.0"},
			},
		}},
	}
}

// MediumAlpine is CleanAlpine with the vulnerable busybox: one Medium
// (CVE-2025-46394, fixed in 1.37.0-r19), which the default gate lets
// through and a policy blocking Medium does not.
func MediumAlpine() Image {
	im := CleanAlpine()
	im.Packages = alpineBase("3.5.4-r0", "1.37.0-r18")
	return im
}
