package sim

import (
	"reflect"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// installStubs fills every nil ...Func field of a go-nvml mock struct
// (mockPtr points to it) with a function that records the call as
// prefix+method and returns zero values and ERROR_NOT_SUPPORTED (or the
// code enter decides: uninitialized, injected fault). Methods the
// simulation implements are defined on the wrapping types and shadow these.
func installStubs(mockPtr any, n *Node, kind callKind, prefix string, gpuIndex func() int) {
	v := reflect.ValueOf(mockPtr).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		fv := v.Field(i)
		if f.Type.Kind() != reflect.Func || !strings.HasSuffix(f.Name, "Func") || !fv.CanSet() || !fv.IsNil() {
			continue
		}
		name := prefix + strings.TrimSuffix(f.Name, "Func")
		ft := f.Type
		fv.Set(reflect.MakeFunc(ft, func([]reflect.Value) []reflect.Value {
			n.mu.Lock()
			r := n.enter(kind, name, gpuIndex())
			n.mu.Unlock()
			if r == nvml.SUCCESS {
				r = nvml.ERROR_NOT_SUPPORTED
			}
			return zeroResults(ft, r)
		}))
	}
}

// zeroResults returns zero values for ft's results, with r in the last
// nvml.Return result.
func zeroResults(ft reflect.Type, r nvml.Return) []reflect.Value {
	out := make([]reflect.Value, ft.NumOut())
	last := -1
	for i := range out {
		out[i] = reflect.Zero(ft.Out(i))
		if ft.Out(i) == reflect.TypeFor[nvml.Return]() {
			last = i
		}
	}
	if last >= 0 {
		out[last] = reflect.ValueOf(r)
	}
	return out
}

// installInterfaceStubs fills the embedded mock.Interface. An Interface
// method whose first parameter is a Device, GpuInstance or
// ComputeInstance and whose name is that type's name plus a method name
// (DeviceGetName, GpuInstanceDestroy, ComputeInstanceGetInfo) is forwarded
// to the handle's method, which does the counting; the rest are stubs.
func (n *Node) installInterfaceStubs() {
	v := reflect.ValueOf(&n.Interface).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		fv := v.Field(i)
		if f.Type.Kind() != reflect.Func || !strings.HasSuffix(f.Name, "Func") || !fv.CanSet() || !fv.IsNil() {
			continue
		}
		name := strings.TrimSuffix(f.Name, "Func")
		ft := f.Type
		if method, ok := forwardedMethod(name, ft); ok {
			fv.Set(reflect.MakeFunc(ft, func(args []reflect.Value) []reflect.Value {
				if args[0].IsNil() {
					return zeroResults(ft, nvml.ERROR_INVALID_ARGUMENT)
				}
				m := args[0].MethodByName(method)
				if !m.IsValid() || !sameSignature(m.Type(), ft) {
					return zeroResults(ft, nvml.ERROR_NOT_SUPPORTED)
				}
				if ft.IsVariadic() {
					return m.CallSlice(args[1:])
				}
				return m.Call(args[1:])
			}))
			continue
		}
		fv.Set(reflect.MakeFunc(ft, func([]reflect.Value) []reflect.Value {
			n.mu.Lock()
			r := n.enter(kindLibrary, name, -1)
			n.mu.Unlock()
			if r == nvml.SUCCESS {
				r = nvml.ERROR_NOT_SUPPORTED
			}
			return zeroResults(ft, r)
		}))
	}
}

// forwardedMethod returns the handle method an Interface method forwards
// to, if it is one that takes a handle first.
func forwardedMethod(name string, ft reflect.Type) (string, bool) {
	if ft.NumIn() == 0 {
		return "", false
	}
	var prefix string
	switch ft.In(0) {
	case reflect.TypeFor[nvml.Device]():
		prefix = "Device"
	case reflect.TypeFor[nvml.GpuInstance]():
		prefix = "GpuInstance"
	case reflect.TypeFor[nvml.ComputeInstance]():
		prefix = "ComputeInstance"
	default:
		return "", false
	}
	method, ok := strings.CutPrefix(name, prefix)
	if !ok || method == "" {
		return "", false
	}
	return method, true
}

// sameSignature reports whether method type mt is ft without its first
// parameter.
func sameSignature(mt, ft reflect.Type) bool {
	if mt.NumIn() != ft.NumIn()-1 || mt.NumOut() != ft.NumOut() || mt.IsVariadic() != ft.IsVariadic() {
		return false
	}
	for i := range mt.NumIn() {
		if mt.In(i) != ft.In(i+1) {
			return false
		}
	}
	for i := range mt.NumOut() {
		if mt.Out(i) != ft.Out(i) {
			return false
		}
	}
	return true
}
