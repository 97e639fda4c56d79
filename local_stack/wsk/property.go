package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/apache/openwhisk-client-go/whisk"
	"github.com/fatih/color"
	"github.com/spf13/cobra"
)

var propOpts struct {
	cert, key, auth, apihost, apiversion, namespace bool
	cliversion, apibuild, apibuildno, all           bool
	apihostSet, apiversionSet, output               string
}

var propertyCmd = &cobra.Command{Use: "property", Short: "work with whisk properties"}

func init() {
	get := newCmd("get", "get property", propertyGet)
	f := get.Flags()
	f.BoolVar(&propOpts.cert, "cert", false, "client cert")
	f.BoolVar(&propOpts.key, "key", false, "Client key")
	f.BoolVar(&propOpts.auth, "auth", false, "authorization key")
	f.BoolVar(&propOpts.apihost, "apihost", false, "whisk API host")
	f.BoolVar(&propOpts.apiversion, "apiversion", false, "whisk API version")
	f.BoolVar(&propOpts.apibuild, "apibuild", false, "whisk API build version")
	f.BoolVar(&propOpts.apibuildno, "apibuildno", false, "whisk API build number")
	f.BoolVar(&propOpts.cliversion, "cliversion", false, "whisk CLI version")
	f.BoolVar(&propOpts.namespace, "namespace", false, "whisk namespace")
	f.BoolVar(&propOpts.all, "all", false, "all properties")
	f.StringVarP(&propOpts.output, "output", "o", "std", "Output format in std|raw")

	set := newCmd("set", "set property", propertySet)
	set.Flags().StringVarP(&globalFlags.auth, "auth", "u", "", "authorization `KEY`")
	set.Flags().StringVar(&globalFlags.cert, "cert", "", "client cert")
	set.Flags().StringVar(&globalFlags.key, "key", "", "client key")
	set.Flags().StringVar(&propOpts.apihostSet, "apihost", "", "whisk API `HOST`")
	set.Flags().StringVar(&propOpts.apiversionSet, "apiversion", "", "whisk API `VERSION`")

	unset := newCmd("unset", "unset property", propertyUnset)
	unset.PreRunE = nil
	unset.Flags().BoolVar(&propOpts.cert, "cert", false, "client cert")
	unset.Flags().BoolVar(&propOpts.key, "key", false, "Client key")
	unset.Flags().BoolVar(&propOpts.auth, "auth", false, "authorization key")
	unset.Flags().BoolVar(&propOpts.apihost, "apihost", false, "whisk API host")
	unset.Flags().BoolVar(&propOpts.apiversion, "apiversion", false, "whisk API version")

	propertyCmd.AddCommand(set, unset, get)
	rootCmd.AddCommand(propertyCmd)
}

// printProperty prints "<name>\t\t<value>" (std) or just the value (raw).
func printProperty(value, name, format string, tabs string) {
	if format == "raw" {
		fmt.Fprintf(color.Output, "%s\n", bold(value))
	} else {
		fmt.Fprintf(color.Output, "%s%s%s\n", name, tabs, bold(value))
	}
}

// currentNamespace is the first namespace of GET /api/v1/namespaces, "_" if that fails.
func currentNamespace() string {
	namespaces, _, err := client.Namespaces.List()
	if err != nil || len(namespaces) == 0 {
		return "_"
	}
	return namespaces[0].Name
}

func propertyGet(cmd *cobra.Command, args []string) error {
	format := propOpts.output
	if format != "std" && format != "raw" {
		return plainError("Supported output format are std|raw")
	}
	p := propOpts
	if !(p.all || p.cert || p.key || p.auth || p.apiversion || p.cliversion || p.namespace || p.apibuild || p.apihost || p.apibuildno) {
		propOpts.all = true
	}
	if propOpts.all {
		if format != "std" {
			return plainError("--output|-o raw only supported with specific property type")
		}
		printProperty(properties.apihost, "whisk API host", format, "\t\t")
		printProperty(properties.auth, "whisk auth", format, "\t\t")
		printProperty(currentNamespace(), "whisk namespace", format, "\t\t")
		printProperty(properties.cert, "client cert", format, "\t\t")
		printProperty(properties.key, "Client key", format, "\t\t")
		printProperty(properties.apiversion, "whisk API version", format, "\t")
		printProperty(cliBuildTime, "whisk CLI version", format, "\t")
	} else {
		if p.apihost {
			printProperty(properties.apihost, "whisk API host", format, "\t\t")
		}
		if p.auth {
			printProperty(properties.auth, "whisk auth", format, "\t\t")
		}
		if p.namespace {
			printProperty(currentNamespace(), "whisk namespace", format, "\t\t")
		}
		if p.cert {
			printProperty(properties.cert, "client cert", format, "\t\t")
		}
		if p.key {
			printProperty(properties.key, "Client key", format, "\t\t")
		}
		if p.cliversion {
			printProperty(cliBuildTime, "whisk CLI version", format, "\t")
		}
		if p.apiversion {
			printProperty(properties.apiversion, "whisk API version", format, "\t")
		}
	}
	if propOpts.all || p.apibuild || p.apibuildno {
		info, _, err := client.Info.Get() // GET /api/v1
		if err != nil {
			info = &whisk.Info{Build: "Unknown", BuildNo: "Unknown"}
		}
		if propOpts.all {
			printProperty(info.Build, "whisk API build", format, "\t\t")
			printProperty(info.BuildNo, "whisk API build number", format, "\t")
		} else {
			if p.apibuild {
				printProperty(info.Build, "whisk API build", format, "\t\t")
			}
			if p.apibuildno {
				printProperty(info.BuildNo, "whisk API build number", format, "\t")
			}
		}
		if err != nil {
			return wrap(fmt.Sprintf("Unable to obtain API build information: %s", err), err)
		}
	}
	return nil
}

// writeProps writes the properties file, one KEY=VALUE line each.
func writeProps(props map[string]string) error {
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", strings.ToUpper(k), props[k])
	}
	if err := os.WriteFile(properties.propsFile, []byte(b.String()), 0o644); err != nil {
		return plainError(fmt.Sprintf("Whisk properties file write failure: %s", err))
	}
	return nil
}

func propertySet(cmd *cobra.Command, args []string) error {
	props := readProps(properties.propsFile)
	var out strings.Builder
	var werr error
	ok := color.GreenString("ok:")
	if globalFlags.cert != "" {
		props["CERT"] = globalFlags.cert
		fmt.Fprintf(&out, "%s client cert set. Run 'wsk property get --cert' to see the new value.\n", ok)
	}
	if globalFlags.key != "" {
		props["KEY"] = globalFlags.key
		fmt.Fprintf(&out, "%s client key set. Run 'wsk property get --key' to see the new value.\n", ok)
	}
	if globalFlags.auth != "" {
		props["AUTH"] = globalFlags.auth
		fmt.Fprintf(&out, "%s whisk auth set. Run 'wsk property get --auth' to see the new value.\n", ok)
	}
	if host := propOpts.apihostSet; host != "" {
		if _, err := whisk.GetURLBase(host, "/api"); err != nil {
			werr = wrapUsage(fmt.Sprintf("Unable to set API host value; the API host value '%s' is invalid: %s", host, err), err)
		} else {
			props["APIHOST"] = host
			fmt.Fprintf(&out, "%s whisk API host set to %s\n", ok, bold(host))
		}
	}
	if v := propOpts.apiversionSet; v != "" {
		props["APIVERSION"] = v
		fmt.Fprintf(&out, "%s whisk API version set to %s\n", ok, bold(v))
	}
	if err := writeProps(props); err != nil {
		return plainError(fmt.Sprintf("Unable to set the property value(s): %s", err))
	}
	fmt.Fprint(color.Output, out.String())
	return werr
}

func propertyUnset(cmd *cobra.Command, args []string) error {
	props := readProps(properties.propsFile)
	var out strings.Builder
	ok := color.GreenString("ok:")
	if propOpts.cert {
		delete(props, "CERT")
		fmt.Fprintf(&out, "%s client cert unset.\n", ok)
	}
	if propOpts.key {
		delete(props, "KEY")
		fmt.Fprintf(&out, "%s client key unset.\n", ok)
	}
	if propOpts.auth {
		delete(props, "AUTH")
		fmt.Fprintf(&out, "%s whisk auth unset.\n", ok)
	}
	if propOpts.apihost {
		delete(props, "APIHOST")
		fmt.Fprintf(&out, "%s whisk API host unset.\n", ok)
	}
	if propOpts.apiversion {
		delete(props, "APIVERSION")
		fmt.Fprintf(&out, "%s whisk API version unset; the default value of %s will be used.\n", ok, bold("v1"))
	}
	if err := writeProps(props); err != nil {
		return plainError(fmt.Sprintf("Unable to unset the property value: %s", err))
	}
	fmt.Fprint(color.Output, out.String())
	return nil
}
