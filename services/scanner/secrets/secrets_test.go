package secrets

import (
	"strconv"
	"strings"
	"testing"
)

// Test credentials: shaped like real ones, never issued. They avoid the word
// "example", which Trivy's allow rules exempt.
const (
	awsKeyID     = "AKIAQ3EGRTZ7K5N2WXYB"
	awsSecretKey = "Jx9p2Lq7Vw4Rt8Yb3Nm6Kc1Hd5Fg0Sz2Ae7Ui9Oo"
	randomToken  = "q8ZfR2mW9xK4vT7nB3cY6hJ1pL5sD0gA"
)

func TestScan(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		content string
		want    []string // "line rule"
	}{
		{
			name:    "aws key id and secret key",
			path:    "deploy/credentials.env",
			content: "# deploy\nAWS_ACCESS_KEY_ID=" + awsKeyID + "\naws_secret_access_key = \"" + awsSecretKey + "\"\n",
			want:    []string{"2 aws-access-key-id", "3 aws-secret-access-key"},
		},
		{
			name:    "generic high-entropy token",
			path:    "config/app.yaml",
			content: "name: shop\nservice:\n  api_token: " + randomToken + "\n",
			want:    []string{"3 " + HighEntropyRuleID},
		},
		{
			name:    "hex secret",
			path:    "settings.py",
			content: "SECRET_KEY = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822c'\n",
			want:    []string{"1 " + HighEntropyRuleID},
		},
		{
			name: "low-entropy values are not secrets",
			path: "config/app.yaml",
			content: "token_header: authorization_bearer_token\npassword_policy: aaaaaaaaaaaaaaaaaaaaaaaa\nsecret_name: production-database-password\n" +
				"token: process.env.API_TOKEN_VALUE_FOR_PROD\nauthor: JohnathanSmithersonTheThird\n" +
				"access_key_id = module.iam.aws_access_key_id_output\nGITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}\n" +
				"tokenizer_model = bert-base-multilingual-uncased-v2\n",
		},
		{
			name:    "entropy without a secret-sounding name",
			path:    "go.mod.txt",
			content: "checksum = " + randomToken + "\n",
		},
		{
			name:    "test files are allowed, as in trivy fs",
			path:    "internal/cart_test.go",
			content: "const awsKey = \"" + awsKeyID + "\"\nconst api_token = \"" + randomToken + "\"\n",
		},
		{
			name:    "lock files are skipped",
			path:    "web/package-lock.json",
			content: `{"integrity": "sha512-` + randomToken + `", "api_token": "` + randomToken + `"}`,
		},
		{
			name:    "binary content is skipped",
			path:    "bin/app",
			content: "\x00\x01AWS_ACCESS_KEY_ID=" + awsKeyID,
		},
	}
	s := New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := s.Scan(tt.path, strings.NewReader(tt.content))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range fs {
				got = append(got, strconv.Itoa(f.Line)+" "+f.RuleID)
				if f.Path != tt.path {
					t.Errorf("finding path %q, want %q", f.Path, tt.path)
				}
				if strings.Contains(f.Match, awsSecretKey) || strings.Contains(f.Match, randomToken) {
					t.Errorf("match %q shows the secret", f.Match)
				}
			}
			if strings.Join(got, ", ") != strings.Join(tt.want, ", ") {
				t.Errorf("findings %q, want %q", got, tt.want)
			}
		})
	}
}

func TestShannon(t *testing.T) {
	if got := shannon("aaaa"); got != 0 {
		t.Errorf("shannon(aaaa) = %v, want 0", got)
	}
	if got := shannon("abcd"); got != 2 {
		t.Errorf("shannon(abcd) = %v, want 2", got)
	}
}
