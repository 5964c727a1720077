package whatif

import (
	"fmt"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/policy/gate"
)

// Load reads a candidate policy file into c: a rampart.yaml (it has apps:)
// replaces the analysis thresholds, anything else is read as a gate policy
// (block_on, ignore_unfixed, waivers). Each kind may be given once.
func (c *Candidate) Load(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var top map[string]any
	_ = yaml.Unmarshal(data, &top) // a syntax error is reported by the parser below
	if _, ok := top["apps"]; ok {
		if c.Apps != nil {
			return fmt.Errorf("%s: a second rampart.yaml (already %s)", path, c.Apps.File)
		}
		c.Apps, err = policy.Parse(path, data)
		return err
	}
	if c.Gate != nil {
		return fmt.Errorf("%s: a second gate policy (already %s)", path, c.Gate.URI)
	}
	c.Gate, err = gate.LoadFile(path)
	return err
}
