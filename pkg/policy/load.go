package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Problem is one thing wrong with a policy file.
type Problem struct {
	File string
	Line int
	Path string // field path, e.g. apps[0].canary.steps[2]
	Msg  string
}

func (p Problem) String() string {
	loc := p.File
	if p.Line > 0 {
		loc += ":" + strconv.Itoa(p.Line)
	}
	if p.Path != "" {
		return loc + ": " + p.Path + ": " + p.Msg
	}
	return loc + ": " + p.Msg
}

// Error lists every problem found in a policy file.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	s := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		s[i] = p.String()
	}
	return "invalid policy:\n  " + strings.Join(s, "\n  ")
}

// Load reads and validates the policy at path.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	return Parse(path, data)
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// Parse validates the policy in data; file names it in messages.
func Parse(file string, data []byte) (*Policy, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &Error{Problems: YAMLProblems(file, err)}
	}
	if len(root.Content) == 0 {
		return nil, &Error{Problems: []Problem{{File: file, Msg: "the policy is empty"}}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var p Policy
	if err := dec.Decode(&p); err != nil {
		return nil, &Error{Problems: YAMLProblems(file, err)}
	}
	lines := map[string]int{}
	indexLines(root.Content[0], "", lines)
	applyDefaults(&p, file)
	var problems []Problem
	for _, v := range validate(&p) {
		problems = append(problems, Problem{File: file, Line: lineOf(lines, v.path), Path: v.path, Msg: v.msg})
	}
	if len(problems) > 0 {
		return nil, &Error{Problems: problems}
	}
	sum := sha256.Sum256(data)
	p.File, p.Digest = file, "sha256:"+hex.EncodeToString(sum[:])
	return &p, nil
}

// YAMLProblems turns the YAML library's errors ("line 4: field x not found in
// type policy.App") into problems with lines.
// Other YAML files of Rampart (chaos files) report their errors with it.
func YAMLProblems(file string, err error) []Problem {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	out := make([]Problem, 0, len(msgs))
	for _, m := range msgs {
		p := Problem{File: file, Msg: m}
		if g := yamlLine.FindStringSubmatch(m); g != nil {
			p.Line, _ = strconv.Atoi(g[1])
			p.Msg = strings.ReplaceAll(g[2], "policy.", "")
		}
		out = append(out, p)
	}
	return out
}

// indexLines records the line of every field path below n.
func indexLines(n *yaml.Node, path string, lines map[string]int) {
	lines[path] = n.Line
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			child := n.Content[i].Value
			if path != "" {
				child = path + "." + child
			}
			lines[child] = n.Content[i].Line
			indexLines(n.Content[i+1], child, lines)
			lines[child] = n.Content[i].Line
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			indexLines(c, fmt.Sprintf("%s[%d]", path, i), lines)
		}
	}
}

// lineOf is the line of path, or of its nearest ancestor present in the file
// (a missing field is reported where its parent is).
func lineOf(lines map[string]int, path string) int {
	for {
		if l, ok := lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return lines[""]
		}
		path = path[:i]
	}
}
