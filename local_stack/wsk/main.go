// Command wsk is a stand-in for the Apache OpenWhisk CLI (github.com/apache/openwhisk-cli), built on
// the same client library (github.com/apache/openwhisk-client-go) with the same command syntax,
// HTTP requests, messages and exit codes. See README.md.
package main

import (
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"

	"github.com/apache/openwhisk-client-go/whisk"
	"github.com/spf13/cobra"
)

// cliBuildTime is the CLI version shown by `property get` and sent in the User-Agent, as in the real
// CLI (which sets it with -ldflags "-X main.CLI_BUILD_TIME=..."; unset it is "not set").
var cliBuildTime = "not set"

var globalFlags struct {
	verbose, debug, insecure             bool
	cert, key, auth, apihost, apiversion string
}

// properties are the effective settings: defaults < wskprops file < WHISK_* variables < flags.
var properties struct {
	cert, key, auth, apihost, apiversion string
	namespace                            string // always "_": the real CLI never reads NAMESPACE
	propsFile                            string
}

var client *whisk.Client

var rootCmd = &cobra.Command{
	Use:               "wsk",
	Short:             "OpenWhisk cloud computing command line interface.",
	SilenceUsage:      true,
	PersistentPreRunE: applyGlobalFlags,
}

func init() {
	pf := rootCmd.PersistentFlags()
	pf.BoolVarP(&globalFlags.verbose, "verbose", "v", false, "verbose output")
	pf.BoolVarP(&globalFlags.debug, "debug", "d", false, "debug level output")
	pf.StringVar(&globalFlags.cert, "cert", "", "client cert")
	pf.StringVar(&globalFlags.key, "key", "", "client key")
	pf.StringVarP(&globalFlags.auth, "auth", "u", "", "authorization `KEY`")
	pf.StringVar(&globalFlags.apihost, "apihost", "", "whisk API `HOST`")
	pf.StringVar(&globalFlags.apiversion, "apiversion", "", "whisk API `VERSION`")
	pf.BoolVarP(&globalFlags.insecure, "insecure", "i", false, "bypass certificate checking")
}

func main() {
	if os.Getenv("WSK_CLI_DEBUG") != "" {
		whisk.SetDebug(true)
	}
	args, err := extractKeyValueArgs(os.Args[1:])
	if err != nil {
		exitOnError(wrapUsage(fmt.Sprintf("Failed to parse arguments: %s", err), err))
	}
	if err := loadProperties(); err != nil {
		exitOnError(wrapUsage(fmt.Sprintf("Unable to access configuration properties: %s", err), err))
	}
	rootCmd.SetArgs(args)
	if err := rootCmd.Execute(); err != nil {
		exitOnError(err)
	}
}

// loadProperties reads the wskprops file (WSK_CONFIG_FILE, else ~/.wskprops) and the WHISK_AUTH,
// WHISK_APIHOST and WHISK_APIVERSION variables.
func loadProperties() error {
	properties.apiversion = "v1"
	properties.namespace = "_"
	if path, ok := os.LookupEnv("WSK_CONFIG_FILE"); ok {
		properties.propsFile = path
	} else if home, err := os.UserHomeDir(); err == nil {
		properties.propsFile = home + "/.wskprops"
	} else {
		return nil
	}
	props := readProps(properties.propsFile)
	if v, ok := props["CERT"]; ok {
		properties.cert = v
	}
	if v, ok := props["KEY"]; ok {
		properties.key = v
	}
	if v, ok := props["AUTH"]; ok {
		properties.auth = v
	}
	if v := os.Getenv("WHISK_AUTH"); v != "" {
		properties.auth = v
	}
	if v, ok := props["APIVERSION"]; ok {
		properties.apiversion = v
	}
	if v := os.Getenv("WHISK_APIVERSION"); v != "" {
		properties.apiversion = v
	}
	if v, ok := props["APIHOST"]; ok {
		properties.apihost = strings.TrimRight(v, "/")
	}
	if v := os.Getenv("WHISK_APIHOST"); v != "" {
		properties.apihost = v
	}
	return nil
}

// readProps parses KEY=VALUE lines; '#' starts a comment, and a line with other than exactly one
// '=' is skipped. A missing file gives no properties.
func readProps(path string) map[string]string {
	props := map[string]string{}
	data, err := os.ReadFile(path)
	if err != nil {
		return props
	}
	for _, line := range strings.Split(string(data), "\n") {
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		kv := strings.Split(strings.TrimSpace(line), "=")
		if len(kv) == 2 {
			props[kv[0]] = kv[1]
		}
	}
	return props
}

// applyGlobalFlags lets the global flags override the properties.
func applyGlobalFlags(cmd *cobra.Command, args []string) error {
	if globalFlags.cert != "" {
		properties.cert = globalFlags.cert
	}
	if globalFlags.key != "" {
		properties.key = globalFlags.key
	}
	if globalFlags.auth != "" {
		properties.auth = globalFlags.auth
	}
	if globalFlags.apiversion != "" {
		properties.apiversion = globalFlags.apiversion
	}
	if globalFlags.apihost != "" {
		properties.apihost = globalFlags.apihost
	}
	if globalFlags.debug {
		whisk.SetDebug(true)
	}
	if globalFlags.verbose {
		whisk.SetVerbose(true)
	}
	return nil
}

// setupClient creates the client-go client (the PreRunE of every command that talks to the API).
// An API host without a scheme gets https://, as client-go does.
func setupClient(cmd *cobra.Command, args []string) error {
	baseURL, err := whisk.GetURLBase(properties.apihost, "/api")
	if err != nil && !apiHostOptional(cmd) {
		return whisk.MakeWskErrorFromWskError(fmt.Errorf("The API host is not valid: %s", err), err,
			whisk.EXIT_CODE_ERR_GENERAL, whisk.DISPLAY_MSG, whisk.NO_DISPLAY_USAGE)
	}
	host := properties.apihost
	if host == "" {
		host = "openwhisk.ng.bluemix.net"
	}
	config := &whisk.Config{
		Cert:      properties.cert,
		Key:       properties.key,
		AuthToken: properties.auth,
		Namespace: properties.namespace,
		BaseURL:   baseURL,
		Version:   properties.apiversion,
		Insecure:  globalFlags.insecure,
		Host:      host,
		UserAgent: "OpenWhisk-CLI/1.0 (" + cliBuildTime + ") " + runtime.GOOS + " " + runtime.GOARCH,
	}
	if client, err = whisk.NewClient(http.DefaultClient, config); err != nil {
		return whisk.MakeWskErrorFromWskError(fmt.Errorf("Unable to initialize server connection: %s", err), err,
			whisk.EXIT_CODE_ERR_GENERAL, whisk.DISPLAY_MSG, whisk.DISPLAY_USAGE)
	}
	return nil
}

// apiHostOptional: `property get` of a single local property and `property set` work without a
// valid API host.
func apiHostOptional(cmd *cobra.Command) bool {
	if cmd.Parent() == nil || cmd.Parent().Name() != "property" {
		return false
	}
	switch cmd.Name() {
	case "get":
		return propOpts.auth || propOpts.cert || propOpts.key || propOpts.apihost || propOpts.apiversion || propOpts.cliversion
	case "set":
		return propOpts.apihostSet != "" || propOpts.apiversionSet != "" || globalFlags.auth != ""
	}
	return false
}

// newCmd builds a leaf command the way the real CLI declares them.
func newCmd(use, short string, run func(cmd *cobra.Command, args []string) error) *cobra.Command {
	return &cobra.Command{
		Use:           use,
		Short:         short,
		SilenceUsage:  true,
		SilenceErrors: true,
		PreRunE:       setupClient,
		RunE:          run,
	}
}
