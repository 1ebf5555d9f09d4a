package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/recstream/recstream/cmd/recstream/internal/config"
)

func newConfigCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check a configuration file or list the environment overrides",
		Long: `config has two subcommands: 'check FILE' validates a configuration and prints
the effective one (defaults filled, environment applied, secrets masked),
'env' lists every RECSTREAM_* variable that overrides a field.`,
		Example: `  recstream config check configs/single-node.yaml
  recstream config env | grep KAFKA`,
	}
	check := &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a configuration file and print the effective configuration",
		Long: `check loads FILE with the environment overrides in force, fills defaults,
validates every field and prints the effective configuration as YAML. A bad
field is named in the error and the exit code is 2.

Secrets (clickhouse.password, kafka.sasl.password, the TLS key passwords)
are printed as ******** when set, whether they came from the file, the
environment or a *_file field (read here, as 'run' reads it), so the
output can be pasted into a ticket.`,
		Example: `  recstream config check configs/single-node.yaml
  RECSTREAM_INPUT_BATCH_MAX_ROWS=2000 recstream config check configs/production.yaml
  RECSTREAM_CLICKHOUSE_PASSWORD_FILE=/run/secrets/ch recstream config check configs/production.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(args[0], os.Environ())
			if err != nil {
				return usageError{err}
			}
			out, err := yaml.Marshal(config.Masked(cfg))
			if err != nil {
				return fmt.Errorf("print configuration: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "# %s: valid\n%s", args[0], out)
			return nil
		},
	}
	env := &cobra.Command{
		Use:     "env",
		Short:   "List the environment variables that override configuration fields",
		Example: `  recstream config env`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			secret := map[string]bool{}
			for _, p := range config.SecretPaths() {
				secret[p] = true
			}
			for _, kv := range config.EnvNames() {
				note := ""
				if secret[kv[1]] {
					note = "  (secret: or " + kv[0] + "_FILE)"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%-50s %s%s\n", kv[0], kv[1], note)
			}
			return nil
		},
	}
	cmd.AddCommand(check, env)
	return cmd
}
