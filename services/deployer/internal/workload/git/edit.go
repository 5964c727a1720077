package git

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// setKustomizeImage sets the images entry named name of a kustomization to
// ref (repository@sha256:…): newName the repository, digest the digest, no
// newTag (a tag next to a digest would be ignored, or worse, believed). An
// absent entry is added.
func setKustomizeImage(content []byte, name, ref string) ([]byte, error) {
	repo, digest, ok := strings.Cut(ref, "@")
	if !ok {
		return nil, fmt.Errorf("image %q has no digest", ref)
	}
	doc, root, err := parse(content)
	if err != nil {
		return nil, err
	}
	images := mapValue(root, "images")
	if images == nil {
		images = &yaml.Node{Kind: yaml.SequenceNode}
		root.Content = append(root.Content, scalar("images"), images)
	}
	if images.Kind != yaml.SequenceNode {
		return nil, errors.New("images is not a list")
	}
	var entry *yaml.Node
	for _, e := range images.Content {
		if n := mapValue(e, "name"); n != nil && n.Value == name {
			entry = e
			break
		}
	}
	if entry == nil {
		entry = &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{scalar("name"), scalar(name)}}
		images.Content = append(images.Content, entry)
	}
	deleteKey(entry, "newTag")
	setKey(entry, "newName", repo)
	setKey(entry, "digest", digest)
	return encode(doc)
}

// setValue sets the dotted key of a Helm values file to value, making the
// maps on the way.
func setValue(content []byte, key, value string) ([]byte, error) {
	doc, node, err := parse(content)
	if err != nil {
		return nil, err
	}
	parts := strings.Split(key, ".")
	for i, p := range parts[:len(parts)-1] {
		next := mapValue(node, p)
		if next == nil {
			next = &yaml.Node{Kind: yaml.MappingNode}
			node.Content = append(node.Content, scalar(p), next)
		}
		if next.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s is not a map", strings.Join(parts[:i+1], "."))
		}
		node = next
	}
	if v := mapValue(node, parts[len(parts)-1]); v != nil && v.Kind != yaml.ScalarNode {
		return nil, fmt.Errorf("%s is not a string", key)
	}
	setKey(node, parts[len(parts)-1], value)
	return encode(doc)
}

// parse reads a YAML document whose top is a map; an empty file is an
// empty map.
func parse(content []byte) (doc, root *yaml.Node, err error) {
	doc = &yaml.Node{}
	if err := yaml.Unmarshal(content, doc); err != nil {
		return nil, nil, err
	}
	if len(doc.Content) == 0 {
		doc = &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode}}}
	}
	root = doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, nil, errors.New("the document is not a map")
	}
	return doc, root, nil
}

func encode(doc *yaml.Node) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func scalar(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }

// mapValue is key's value in map m, nil if absent.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func setKey(m *yaml.Node, key, value string) {
	if v := mapValue(m, key); v != nil {
		v.Kind, v.Tag, v.Value, v.Style = yaml.ScalarNode, "!!str", value, 0
		return
	}
	m.Content = append(m.Content, scalar(key), scalar(value))
}

func deleteKey(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}
