module github.com/tessera-gpu/tessera

go 1.26

require (
	github.com/NVIDIA/go-nvml v0.13.3-0
	github.com/spf13/cobra v1.10.2
	github.com/spf13/pflag v1.0.9
	go.yaml.in/yaml/v3 v3.0.4
	gonum.org/v1/gonum v0.16.0
)

require github.com/inconshreveable/mousetrap v1.1.0 // indirect
