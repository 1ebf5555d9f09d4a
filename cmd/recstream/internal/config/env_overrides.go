package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// applyEnv sets the fields of cfg (a pointer to a struct) named by
// environment variables PREFIX_YAML_PATH. Values are parsed as YAML into the
// field's type, so durations ("250ms"), numbers, booleans and lists work;
// a list may also be written comma-separated.
func applyEnv(cfg any, prefix string, environ []string) error {
	vars := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, prefix+"_") {
			vars[k] = v
		}
	}
	if len(vars) == 0 {
		return nil
	}
	used := map[string]bool{}
	err := walkFields(reflect.ValueOf(cfg).Elem(), prefix, func(env, path string, field reflect.Value) error {
		raw, ok := vars[env]
		if !ok {
			return nil
		}
		used[env] = true
		if field.Kind() == reflect.Slice && !strings.HasPrefix(strings.TrimSpace(raw), "[") {
			raw = "[" + raw + "]"
		}
		if err := yaml.Unmarshal([]byte(raw), field.Addr().Interface()); err != nil {
			return fmt.Errorf("%s (%s): %w", env, path, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var unknown []string
	for k := range vars {
		if !used[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("%s: no such setting (see `recstream config env`)", strings.Join(unknown, ", "))
	}
	return nil
}

// EnvNames lists every environment variable that can override a field,
// with the field's YAML path, in declaration order.
func EnvNames() [][2]string {
	var out [][2]string
	var cfg Config
	_ = walkFields(reflect.ValueOf(&cfg).Elem(), EnvPrefix, func(env, path string, _ reflect.Value) error {
		out = append(out, [2]string{env, path})
		return nil
	})
	return out
}

// walkFields calls fn for every leaf field of the struct v (walkStructs'
// walk) with its environment variable name: prefix, then the YAML path in
// capitals with "_" for ".".
func walkFields(v reflect.Value, prefix string, fn func(env, path string, field reflect.Value) error) error {
	return walkStructs(v, "", func(path string, _ reflect.Value, _ reflect.StructField, fv reflect.Value) error {
		return fn(prefix+"_"+strings.ToUpper(strings.ReplaceAll(path, ".", "_")), path, fv)
	})
}
