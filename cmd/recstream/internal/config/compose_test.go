package config

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The production-shaped stack cannot run here (no Docker engine), so this
// test reads docker-compose.yml as Docker would and checks everything it
// names against the repository: build contexts and Dockerfiles, bind-mounted
// files, named volumes and secrets, ports, the configuration file the
// recstream service runs with and every RECSTREAM_* variable it sets, and
// the Prometheus and Grafana wiring to recstream's metrics endpoint.

const repoRoot = "../../../.."

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
	Secrets  map[string]struct {
		File        string `yaml:"file"`
		Environment string `yaml:"environment"`
	} `yaml:"secrets"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   []string          `yaml:"depends_on"`
	Secrets     []string          `yaml:"secrets"`
	Restart     string            `yaml:"restart"`
}

// mount is one entry of a service's volumes.
type mount struct {
	source, target string
	bind           bool // a host path (./x or /x), else a named volume
}

func parseMount(t *testing.T, service, spec string) mount {
	t.Helper()
	parts := strings.Split(spec, ":")
	if len(parts) < 2 || len(parts) > 3 || (len(parts) == 3 && parts[2] != "ro" && parts[2] != "rw") {
		t.Fatalf("%s: volume %q is not source:target[:ro|rw]", service, spec)
	}
	m := mount{source: parts[0], target: parts[1]}
	m.bind = strings.HasPrefix(m.source, "./") || strings.HasPrefix(m.source, "/") || m.source == "."
	if !strings.HasPrefix(m.target, "/") {
		t.Fatalf("%s: volume %q: target must be absolute", service, spec)
	}
	return m
}

// hostPath maps a path inside service's container to the repository file
// bind-mounted there, or "" when no bind mount covers it.
func hostPath(t *testing.T, s composeService, name, containerPath string) string {
	t.Helper()
	for _, v := range s.Volumes {
		m := parseMount(t, name, v)
		if !m.bind {
			continue
		}
		if containerPath == m.target {
			return filepath.Join(repoRoot, m.source)
		}
		if rest, ok := strings.CutPrefix(containerPath, strings.TrimSuffix(m.target, "/")+"/"); ok {
			return filepath.Join(repoRoot, m.source, rest)
		}
	}
	return ""
}

// underVolume reports whether containerPath lies on a named volume of s.
func underVolume(t *testing.T, s composeService, name, containerPath string) bool {
	for _, v := range s.Volumes {
		m := parseMount(t, name, v)
		if !m.bind && (containerPath == m.target || strings.HasPrefix(containerPath, m.target+"/")) {
			return true
		}
	}
	return false
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true) // a key this test does not model must be added here, and checked
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

func TestComposeNamesOnlyWhatExists(t *testing.T) {
	c := readCompose(t)
	for _, want := range []string{"kafka", "clickhouse", "recstream", "prometheus", "grafana"} {
		if _, ok := c.Services[want]; !ok {
			t.Errorf("service %s missing", want)
		}
	}
	hostPorts := map[int]string{}
	usedVolumes, usedSecrets := map[string]bool{}, map[string]bool{}
	for name, s := range c.Services {
		if (s.Image == "") == (s.Build == nil) {
			t.Errorf("%s: needs exactly one of image and build", name)
		}
		if s.Build != nil {
			ctx := filepath.Join(repoRoot, s.Build.Context)
			dockerfile := filepath.Join(ctx, cmpOr(s.Build.Dockerfile, "Dockerfile"))
			if _, err := os.Stat(dockerfile); err != nil {
				t.Errorf("%s: build: %v", name, err)
			} else {
				checkDockerfile(t, dockerfile, ctx)
			}
		}
		for _, d := range s.DependsOn {
			if _, ok := c.Services[d]; !ok {
				t.Errorf("%s: depends_on %s, which is no service", name, d)
			}
		}
		for _, p := range s.Ports {
			host, container, ok := strings.Cut(p, ":")
			hp, err1 := strconv.Atoi(host)
			_, err2 := strconv.Atoi(container)
			if !ok || err1 != nil || err2 != nil {
				t.Errorf("%s: port %q is not host:container", name, p)
				continue
			}
			if other, dup := hostPorts[hp]; dup {
				t.Errorf("host port %d published by %s and %s", hp, other, name)
			}
			hostPorts[hp] = name
		}
		for _, v := range s.Volumes {
			m := parseMount(t, name, v)
			if m.bind {
				if _, err := os.Stat(filepath.Join(repoRoot, m.source)); err != nil {
					t.Errorf("%s: bind mount %s: %v", name, m.source, err)
				}
				continue
			}
			if _, ok := c.Volumes[m.source]; !ok {
				t.Errorf("%s: named volume %s is not declared under volumes:", name, m.source)
			}
			usedVolumes[m.source] = true
		}
		for _, sec := range s.Secrets {
			if _, ok := c.Secrets[sec]; !ok {
				t.Errorf("%s: secret %s is not declared under secrets:", name, sec)
			}
			usedSecrets[sec] = true
		}
	}
	for v := range c.Volumes {
		if !usedVolumes[v] {
			t.Errorf("volume %s is declared but no service mounts it", v)
		}
	}
	for name, sec := range c.Secrets {
		if !usedSecrets[name] {
			t.Errorf("secret %s is declared but no service uses it", name)
		}
		if (sec.File == "") == (sec.Environment == "") {
			t.Errorf("secret %s: needs exactly one of file and environment", name)
		}
		if sec.File != "" {
			if _, err := os.Stat(filepath.Join(repoRoot, sec.File)); err != nil {
				t.Errorf("secret %s: %v", name, err)
			}
		}
	}
}

// checkDockerfile checks that every COPY source and every script RUN calls
// exists in the build context.
func checkDockerfile(t *testing.T, path, ctx string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	script := regexp.MustCompile(`\./scripts/[A-Za-z0-9_.-]+`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "COPY":
			if slices.ContainsFunc(fields, func(a string) bool { return strings.HasPrefix(a, "--from") }) {
				continue // from another stage
			}
			args := slices.DeleteFunc(slices.Clone(fields[1:]), func(a string) bool { return strings.HasPrefix(a, "--") })
			if len(args) < 2 {
				t.Errorf("%s: %q copies nothing", path, sc.Text())
				continue
			}
			for _, src := range args[:len(args)-1] {
				if _, err := os.Stat(filepath.Join(ctx, src)); err != nil {
					t.Errorf("%s: COPY %s: %v", path, src, err)
				}
			}
		case "RUN":
			for _, s := range script.FindAllString(sc.Text(), -1) {
				if _, err := os.Stat(filepath.Join(ctx, s)); err != nil {
					t.Errorf("%s: RUN %s: %v", path, s, err)
				}
			}
		}
	}
}

// TestComposeRecstreamConfigLoads loads the configuration file the
// recstream service names, through its bind mount, with the service's
// environment: every RECSTREAM_* variable must be a real override whose
// value parses, secret files must come from the service's secrets, and the
// result must validate.
func TestComposeRecstreamConfigLoads(t *testing.T) {
	c := readCompose(t)
	s := c.Services["recstream"]
	i := slices.Index(s.Command, "--config")
	if i < 0 || i+1 >= len(s.Command) {
		t.Fatalf("recstream command %v names no --config", s.Command)
	}
	cfgPath := hostPath(t, s, "recstream", s.Command[i+1])
	if cfgPath == "" {
		t.Fatalf("no bind mount of the repository provides %s", s.Command[i+1])
	}
	overrides := map[string]string{}
	for _, kv := range EnvNames() {
		overrides[kv[0]] = kv[1]
	}
	secretDir := t.TempDir()
	var environ []string
	for k, v := range s.Environment {
		if !strings.HasPrefix(k, EnvPrefix+"_") {
			continue
		}
		path, ok := overrides[k]
		if !ok {
			t.Errorf("%s is no configuration override (see `recstream config env`)", k)
			continue
		}
		if strings.Contains(v, "${") {
			t.Errorf("%s=%s: interpolation in a recstream setting hides its value from this test", k, v)
		}
		if strings.HasSuffix(path, "_file") {
			sec, ok := strings.CutPrefix(v, "/run/secrets/")
			if !ok || !slices.Contains(s.Secrets, sec) {
				t.Errorf("%s=%s: a secret file must be one of the service's secrets (%v) under /run/secrets", k, v, s.Secrets)
				continue
			}
			v = filepath.Join(secretDir, sec)
			if err := os.WriteFile(v, []byte("placeholder-secret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		environ = append(environ, k+"="+v)
	}
	cfg, err := Load(cfgPath, environ)
	if err != nil {
		t.Fatalf("%s with the compose environment: %v", cfgPath, err)
	}
	if cfg.ClickHouse.Password != "placeholder-secret" {
		t.Errorf("clickhouse password not read from the secret file (got %q)", cfg.ClickHouse.Password)
	}

	// Where recstream keeps state must be a volume, not the container's
	// writable layer.
	for what, dir := range map[string]string{"checkpoint.dir": cfg.Checkpoint.Dir, "scorer.model_dir": cfg.Scorer.ModelDir} {
		if dir == "" || !underVolume(t, s, "recstream", dir) {
			t.Errorf("%s = %q is not on a named volume of the recstream service", what, dir)
		}
	}
	// The metrics endpoint listens on every interface, on the published port.
	_, port, err := splitListen(cfg.Metrics.Listen)
	if err != nil || port == "" {
		t.Fatalf("metrics.listen = %q: the compose stack needs the metrics endpoint", cfg.Metrics.Listen)
	}
	if !slices.ContainsFunc(s.Ports, func(p string) bool { return strings.HasSuffix(p, ":"+port) }) {
		t.Errorf("metrics port %s is not published (ports %v)", port, s.Ports)
	}
	checkPrometheus(t, c, "recstream:"+port)
	checkGrafana(t, c)
}

func splitListen(addr string) (host, port string, err error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", "", os.ErrInvalid
	}
	return addr[:i], addr[i+1:], nil
}

// checkPrometheus checks the Prometheus service scrapes target with a
// configuration and rule files mounted from the repository.
func checkPrometheus(t *testing.T, c composeFile, target string) {
	t.Helper()
	s := c.Services["prometheus"]
	cfgPath := "/etc/prometheus/prometheus.yml"
	for _, a := range s.Command {
		if v, ok := strings.CutPrefix(a, "--config.file="); ok {
			cfgPath = v
		}
	}
	host := hostPath(t, s, "prometheus", cfgPath)
	raw, err := os.ReadFile(host)
	if err != nil {
		t.Fatalf("prometheus config %s (%s): %v", cfgPath, host, err)
	}
	var pc struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &pc); err != nil {
		t.Fatalf("%s: %v", host, err)
	}
	found := false
	for _, sc := range pc.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			found = found || slices.Contains(st.Targets, target)
		}
	}
	if !found {
		t.Errorf("%s does not scrape %s", host, target)
	}
	for _, r := range pc.RuleFiles {
		if p := hostPath(t, s, "prometheus", r); p == "" {
			t.Errorf("rule file %s is not mounted from the repository", r)
		} else if _, err := os.Stat(p); err != nil {
			t.Errorf("rule file %s: %v", r, err)
		}
	}
}

// checkGrafana checks the dashboard provider's path is where the dashboard
// JSON is mounted, and the data source points at the Prometheus service.
func checkGrafana(t *testing.T, c composeFile) {
	t.Helper()
	s := c.Services["grafana"]
	prov := hostPath(t, s, "grafana", "/etc/grafana/provisioning")
	if prov == "" {
		t.Fatal("grafana: no provisioning directory mounted at /etc/grafana/provisioning")
	}
	raw, err := os.ReadFile(filepath.Join(prov, "dashboards", "recstream.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var dp struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(raw, &dp); err != nil || len(dp.Providers) == 0 {
		t.Fatalf("dashboard provisioning: %v", err)
	}
	dash := hostPath(t, s, "grafana", dp.Providers[0].Options.Path+"/recstream-dashboard.json")
	if dash == "" || filepath.Clean(dash) != filepath.Join(repoRoot, "deploy/grafana/recstream-dashboard.json") {
		t.Errorf("the provider's path %s does not hold deploy/grafana/recstream-dashboard.json (found %q)", dp.Providers[0].Options.Path, dash)
	}
	raw, err = os.ReadFile(filepath.Join(prov, "datasources", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var ds struct {
		Datasources []struct {
			Type, URL string
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(raw, &ds); err != nil || len(ds.Datasources) == 0 {
		t.Fatalf("datasource provisioning: %v", err)
	}
	if u := ds.Datasources[0].URL; !strings.Contains(u, "//prometheus:") {
		t.Errorf("datasource URL %s is not the prometheus service", u)
	}
	if _, ok := c.Services["prometheus"]; !ok {
		t.Error("no prometheus service for the data source")
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
