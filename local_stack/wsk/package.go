package main

import (
	"fmt"
	"strings"

	"github.com/apache/openwhisk-client-go/whisk"
	"github.com/spf13/cobra"
)

var packageOpts struct {
	shared    string
	summary   bool
	overwrite bool
}

var packageCmd = &cobra.Command{Use: "package", Short: "work with packages"}

func init() {
	bind := newCmd("bind PACKAGE_NAME BOUND_PACKAGE_NAME", "bind parameters to a package", packageBind)
	addKeyValueFlags(bind, true)
	bind.Flags().BoolVarP(&packageOpts.overwrite, "overwrite", "o", false, "overwrite bind")

	create := newCmd("create PACKAGE_NAME", "create a new package", func(cmd *cobra.Command, args []string) error {
		return packageCreateOrUpdate(args, false)
	})
	update := newCmd("update PACKAGE_NAME", "update an existing package, or create a package if it does not exist",
		func(cmd *cobra.Command, args []string) error { return packageCreateOrUpdate(args, true) })
	for _, c := range []*cobra.Command{create, update} {
		addKeyValueFlags(c, true)
		c.Flags().StringVar(&packageOpts.shared, "shared", "", "package visibility `SCOPE`; yes = shared, no = private")
	}

	get := newCmd("get PACKAGE_NAME [FIELD_FILTER]", "get package", packageGet)
	get.Flags().BoolVarP(&packageOpts.summary, "summary", "s", false, "summarize package details; parameters with prefix \"*\" are bound")

	list := newCmd("list [NAMESPACE]", "list all packages", packageList)
	addListFlags(list, "packages", 30)

	packageCmd.AddCommand(bind, create, update, get, newCmd("delete PACKAGE_NAME", "delete package", packageDelete), list)
	rootCmd.AddCommand(packageCmd)
}

func packageBind(cmd *cobra.Command, args []string) error {
	if err := checkArgs(args, 2, 2, "A package name and binding name are required."); err != nil {
		return err
	}
	pkg, err := parseQName(args[0])
	if err != nil {
		return err
	}
	binding, err := parseQName(args[1])
	if err != nil {
		return err
	}
	client.Namespace = binding.namespace
	params, err := paramsKV(paramArgs)
	if err != nil {
		return err
	}
	annots, err := annotsKV(annotArgs)
	if err != nil {
		return err
	}
	p := &whisk.BindingPackage{
		Name:        binding.name,
		Annotations: annots,
		Parameters:  params,
		Binding:     whisk.Binding{Name: pkg.name, Namespace: pkg.namespace},
	}
	if _, _, err := client.Packages.Insert(p, packageOpts.overwrite); err != nil {
		return wrap(fmt.Sprintf("Binding creation failed: %s", err), err)
	}
	okf("created binding %s", bold(args[1]))
	return nil
}

func packageCreateOrUpdate(args []string, update bool) error {
	if err := checkArgs(args, 1, 1, "A package name is required."); err != nil {
		return err
	}
	qn, err := parseQName(args[0])
	if err != nil {
		return err
	}
	client.Namespace = qn.namespace
	var shared *bool
	switch strings.ToLower(packageOpts.shared) {
	case "yes":
		shared = new(bool)
		*shared = true
	case "no":
		shared = new(bool)
	case "":
	default:
		return usageError(fmt.Sprintf("Cannot use value '%s' for shared.", packageOpts.shared))
	}
	params, err := paramsKV(paramArgs)
	if err != nil {
		return err
	}
	annots, err := annotsKV(annotArgs)
	if err != nil {
		return err
	}
	p := &whisk.Package{Name: qn.name, Namespace: qn.namespace, Annotations: annots, Parameters: params, Publish: shared}
	if _, _, err := client.Packages.Insert(p, update); err != nil {
		if update {
			return wrap(fmt.Sprintf("Package update failed: %s", err), err)
		}
		return wrap(fmt.Sprintf("Unable to create package '%s': %s", qn.name, err), err)
	}
	if update {
		okf("updated package %s", bold(qn.name))
	} else {
		okf("created package %s", bold(qn.name))
	}
	return nil
}

func packageGet(cmd *cobra.Command, args []string) error {
	if err := checkArgs(args, 1, 2, "A package name is required."); err != nil {
		return err
	}
	field := ""
	if len(args) > 1 {
		if field = args[1]; !fieldExists(&whisk.Package{}, field) {
			return invalidFieldError(field)
		}
	}
	qn, err := parseQName(args[0])
	if err != nil {
		return err
	}
	client.Namespace = qn.namespace
	pkg, _, err := client.Packages.Get(qn.name)
	if err != nil {
		return wrap(fmt.Sprintf("Unable to get package '%s': %s", qn.name, err), err)
	}
	switch {
	case packageOpts.summary:
		printPackageSummary(pkg)
	case field != "":
		okf("got package %s, displaying field %s", bold(qn.name), bold(field))
		printField(pkg, field)
	default:
		okf("got package %s", bold(qn.name))
		printJSON(pkg)
	}
	return nil
}

func printPackageSummary(pkg *whisk.Package) {
	printEntitySummary(fmt.Sprintf("%7s", "package"), fullName(pkg.Namespace, pkg.Name, ""),
		stringValue(pkg.Annotations, "description"), paramUnion(pkg.Annotations, pkg.Parameters))
	for _, a := range pkg.Actions {
		printEntitySummary(fmt.Sprintf("%7s", "action"), fullName(pkg.Namespace, pkg.Name, a.Name),
			stringValue(a.Annotations, "description"), paramUnion(a.Annotations, a.Parameters))
	}
	for _, f := range pkg.Feeds {
		printEntitySummary(fmt.Sprintf("%7s", "feed  "), fullName(pkg.Namespace, pkg.Name, f.Name),
			stringValue(f.Annotations, "description"), paramUnion(f.Annotations, f.Parameters))
	}
}

func packageDelete(cmd *cobra.Command, args []string) error {
	if err := checkArgs(args, 1, 1, "A package name is required."); err != nil {
		return err
	}
	qn, err := parseQName(args[0])
	if err != nil {
		return err
	}
	client.Namespace = qn.namespace
	if _, err := client.Packages.Delete(qn.name); err != nil {
		return wrap(fmt.Sprintf("Unable to delete package '%s': %s", qn.name, err), err)
	}
	okf("deleted package %s", bold(qn.name))
	return nil
}

// namespaceArg points the client at the namespace given as the optional argument of a list command.
func namespaceArg(args []string) error {
	if len(args) == 0 {
		return nil
	}
	qn, err := parseQName(args[0])
	if err != nil {
		return err
	}
	if qn.name != "" {
		return usageError(fmt.Sprintf("An entity name, '%s', was provided instead of a namespace. Valid namespaces are of the following format: /NAMESPACE.", qn.name))
	}
	client.Namespace = qn.namespace
	return nil
}

func packageList(cmd *cobra.Command, args []string) error {
	if err := checkArgs(args, 0, 1, "An optional namespace is the only valid argument."); err != nil {
		return err
	}
	if err := namespaceArg(args); err != nil {
		return err
	}
	packages, _, err := client.Packages.List(&whisk.PackageListOptions{Skip: listOpts.skip, Limit: listOpts.limit})
	if err != nil {
		return wrap(fmt.Sprintf("Unable to obtain the list of packages for namespace '%s': %s", clientNamespace(), err), err)
	}
	printList(printables(packages), "packages", listOpts.nameSort)
	return nil
}
