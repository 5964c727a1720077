package events

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"shop", "a", "shop-2", strings.Repeat("a", MaxName)} {
		if err := CheckName("app", ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, tc := range []struct{ name, want string }{
		{"", "app is empty"},
		{"Shop", `app "Shop": want 1 to 63`},
		{"-shop", `app "-shop"`},
		{"shop.eu", `app "shop.eu"`},
		{"a*", `app "a*"`},
		{"sh op", `app "sh op"`},
		{strings.Repeat("a", MaxName+1), "(64 bytes)"},
		{strings.Repeat("a", 5000), "… (5000 bytes)"},
	} {
		err := CheckName("app", tc.name)
		if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), tc.want) || len(err.Error()) > 300 {
			t.Errorf("%.20q: %v, want ErrInvalidName with %q", tc.name, err, tc.want)
		}
	}
}
