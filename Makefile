# segment-operator Makefile. `make help` lists the targets.

# Image URL to use all building/pushing image targets.
IMG ?= ghcr.io/segment-operator/segment-operator:latest
# The semantic version stamped into the binaries and the image (`manager --version`): the
# tag (v1.2.3) on a tagged commit, v1.2.3-<n>-g<commit> after it, v0.0.0-g<commit> before any
# tag, each with -dirty for uncommitted changes; dev outside a git checkout.
VERSION ?= $(shell git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null || \
	{ c=$$(git rev-parse --short HEAD 2>/dev/null) && echo "v0.0.0-g$$c$$(git diff --quiet HEAD -- 2>/dev/null || echo -dirty)"; } || \
	echo dev)
LDFLAGS := -X github.com/segment-operator/segment-operator/internal/version.Version=$(VERSION)

# Tools are installed into bin/ by `go install` of a pinned version.
LOCALBIN ?= $(shell pwd)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
CONTROLLER_TOOLS_VERSION ?= v0.23.0
KUSTOMIZE ?= $(LOCALBIN)/kustomize
KUSTOMIZE_VERSION ?= v5.8.1
KUBEBUILDER ?= $(LOCALBIN)/kubebuilder
KUBEBUILDER_VERSION ?= v4.16.0
CRD_REF_DOCS ?= $(LOCALBIN)/crd-ref-docs
CRD_REF_DOCS_VERSION ?= v0.3.0
KO ?= $(LOCALBIN)/ko
KO_VERSION ?= v0.19.1
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint
GOLANGCI_LINT_VERSION ?= v2.15.0

# Test flags: the whole suite, with the race detector, uncached; 30 minutes, as test/image's
# first run builds the manager for two platforms with ko (ko itself and the two builds: about 13 minutes on 2 cores).
GO_TEST_FLAGS ?= -race -count=1 -timeout 30m

SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen crd-ref-docs ## Generate the CRD and RBAC manifests under config/, and the API reference docs/api-reference.md.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook paths="./..." output:crd:artifacts:config=config/crd/bases
	$(CRD_REF_DOCS) --source-path=./api --config=hack/crd-ref-docs/config.yaml --templates-dir=hack/crd-ref-docs/templates \
	  --renderer=markdown --output-path=docs/api-reference.md --log-level=WARN

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods for the API types.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: fmt
fmt: ## Run go fmt.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: golangci-lint ## Run golangci-lint (.golangci.yml: the linters and formatters, and why each exclusion).
	$(GOLANGCI_LINT) run

.PHONY: lint-fix
lint-fix: golangci-lint ## Run golangci-lint and apply its fixes (formatting, imports, and the linters that offer one).
	$(GOLANGCI_LINT) run --fix

.PHONY: lint-config
lint-config: golangci-lint ## Check .golangci.yml against golangci-lint's configuration schema.
	$(GOLANGCI_LINT) config verify

.PHONY: test
test: manifests generate fmt vet envtest ko ## Generate, then run every test (unit, envtest, e2e, the ko image) against a local control plane and the simulator.
	KUBEBUILDER_ASSETS="$$(hack/envtest.sh $(LOCALBIN))" go test $(GO_TEST_FLAGS) ./...

.PHONY: envtest
envtest: ## Build the envtest control plane (kube-apiserver, etcd) from the Go module proxy into bin/k8s/ (cached).
	@hack/envtest.sh $(LOCALBIN) >/dev/null

.PHONY: demo
demo: manifests envtest ## Run the operator locally (control plane + simulator + manager), apply config/samples and show the lifecycle. DEMO_KEEP=1 keeps it running.
	go run ./hack/demo

.PHONY: bench
bench: manifests envtest ## Benchmark at scale against a rate-limited simulator, and a hostile tenant; prints a table and writes bin/bench/results.txt (about 20 minutes).
	go run ./hack/bench $(BENCH_ARGS)

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build the manager (bin/manager), the simulator (bin/chatbot-sim) and the kubectl plugin (bin/kubectl-segments).
	go build -ldflags "$(LDFLAGS)" -o $(LOCALBIN)/manager ./cmd
	go build -ldflags "$(LDFLAGS)" -o $(LOCALBIN)/chatbot-sim ./cmd/chatbot-sim
	go build -ldflags "$(LDFLAGS)" -o $(LOCALBIN)/kubectl-segments ./cmd/kubectl-segments

.PHONY: run
run: manifests generate fmt vet ## Run the manager from your host against the cluster in $$KUBECONFIG (needs $$CHATBOT_API_TOKEN).
	go run ./cmd --metrics-bind-address=0

.PHONY: run-sim
run-sim: ## Run the ChatBot API simulator on 127.0.0.1:8090 with token "dev-token".
	go run ./cmd/chatbot-sim --listen 127.0.0.1:8090 --token dev-token

.PHONY: build-installer
build-installer: manifests generate kustomize ## Write dist/install.yaml: CRD, RBAC and manager for image $(IMG).
	mkdir -p dist
	$(render-default) > dist/install.yaml
	$(KUSTOMIZE) build config/admission > dist/admission-policy.yaml
	@echo "wrote dist/install.yaml for $(IMG), and dist/admission-policy.yaml (optional, Kubernetes 1.36 or later)"

# The chart is generated from dist/install.yaml by kubebuilder's Helm plugin (which runs
# build-installer). The templates of install.yaml's objects are regenerated on every run;
# values.yaml, values.schema.json, NOTES.txt, _helpers.tpl, the templates under prometheus/,
# network-policy/ and sharding/ are ours, and kept. The optional bundles (config/prometheus,
# config/network-policy) are copied into files/, which those templates read, and a few
# generated templates are amended (`hack/chart finish` says which and why).
# test/chart renders the chart with helm's own packages and checks it against config/.
CHART_DIR := charts/chart

.PHONY: chart
chart: manifests generate kustomize kubebuilder ## Regenerate the Helm chart in charts/chart from config/ (through dist/install.yaml).
	$(KUBEBUILDER) edit --plugins=helm/v2-alpha --manifests=dist/install.yaml --output-dir=charts
	go run ./hack/chart finish -chart $(CHART_DIR)

##@ Release

# The repository release images are pushed to, and the image a release's install.yaml names:
# the tag by default; the release workflow passes the image it pushed, by digest.
# A release is made from a clean checkout and leaves it clean: build-installer regenerates
# the CRD, RBAC and deepcopy code, which must be those committed, and writes only into dist/
# (ignored by git).
RELEASE_REPO ?= ghcr.io/segment-operator/segment-operator
RELEASE_IMG ?= $(RELEASE_REPO):$(VERSION)

.PHONY: release
release: ## Write dist/ for a release, from a clean checkout: install.yaml and the chart package for $(RELEASE_IMG), admission-policy.yaml, the kubectl plugin's archives and krew manifest; VERSION=vX.Y.Z is required.
	@[ "$(origin VERSION)" != file ] || { echo "make release needs the version: make release VERSION=v1.2.3" >&2; exit 1; }
	@[[ "$(VERSION)" =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$$ ]] || { echo "VERSION=$(VERSION) is not a semantic version vX.Y.Z[-pre]" >&2; exit 1; }
	@[ -z "$$(git status --porcelain)" ] || { echo "make release needs a clean checkout (git status); commit or stash first" >&2; exit 1; }
	rm -rf dist
	$(MAKE) --no-print-directory build-installer IMG=$(RELEASE_IMG)
	@[ -z "$$(git status --porcelain)" ] || { git status --short >&2; echo "make manifests generate changed the checkout: commit what they generate, then release" >&2; exit 1; }
	go run ./hack/chart package -chart $(CHART_DIR) -version $(VERSION) -image $(RELEASE_IMG) -out dist
	hack/plugin-release.sh $(VERSION) dist
	@echo
	@echo "dist/ holds release $(VERSION); its install.yaml and chart run $(RELEASE_IMG)."
	@echo "The image is built by ko (.ko.yaml: distroless base, linux/amd64 and linux/arm64), no Docker;"
	@echo "make image-tarball VERSION=$(VERSION) checks it here, make image-push VERSION=$(VERSION) pushes it (after ko login)."
	@echo "On a tag v*, .github/workflows/release.yaml builds and pushes it, signs it with cosign and attaches dist/ to the GitHub release."

# image-push is the release's image build (.github/workflows/release.yaml runs it): ko
# pushes the index (linux/amd64, linux/arm64) and an SBOM to $(RELEASE_REPO), tags the index
# $(VERSION), and prints it by digest on stdout, alone with -s. Log in first: bin/ko login.
.PHONY: image-push
image-push: ko ## Build the manager image with ko and push it to $(RELEASE_REPO) as $(VERSION), printing it by digest; VERSION=vX.Y.Z is required.
	@[ "$(origin VERSION)" != file ] || { echo "make image-push needs the version: make image-push VERSION=v1.2.3" >&2; exit 1; }
	@[[ "$(VERSION)" =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$$ ]] || { echo "VERSION=$(VERSION) is not a semantic version vX.Y.Z[-pre]" >&2; exit 1; }
	@grep -Eq '^defaultBaseImage: [^ ]+@sha256:[0-9a-f]{64}$$' .ko.yaml || [ "$(ALLOW_UNPINNED_BASE)" = true ] || \
	  { echo "make image-push: .ko.yaml's defaultBaseImage is not pinned by digest (TODO(release) there); pin it, or ALLOW_UNPINNED_BASE=true" >&2; exit 1; }
	VERSION=$(VERSION) KO_DOCKER_REPO=$(RELEASE_REPO) $(KO) build ./cmd $(KO_BUILD_FLAGS)

##@ Deployment

.PHONY: install
install: manifests kustomize ## Install the CRD into the cluster in $$KUBECONFIG.
	$(KUSTOMIZE) build config/crd | kubectl apply -f -

.PHONY: uninstall
uninstall: manifests kustomize ## Remove the CRD, and so every Segment and (deletionPolicy Delete, with the manager running) its remote segment.
	$(KUSTOMIZE) build config/crd | kubectl delete --ignore-not-found -f -

.PHONY: deploy
deploy: manifests kustomize ## Deploy the operator (image $(IMG)) to the cluster in $$KUBECONFIG.
	$(render-default) | kubectl apply -f -

# DELETE_CRDS=true makes undeploy delete the CRD too: first, while the manager still runs, so
# that each Segment is finalized (its remote segment deleted under deletionPolicy Delete).
DELETE_CRDS ?= false

.PHONY: undeploy
undeploy: kustomize ## Remove the operator but keep the CRD, Segments and remote segments; DELETE_CRDS=true deletes them too.
	@if [ "$(DELETE_CRDS)" = true ]; then \
	  echo "DELETE_CRDS=true: deleting the CRD, every Segment and, under deletionPolicy Delete, every remote segment"; \
	  $(KUSTOMIZE) build config/crd | kubectl delete --ignore-not-found -f -; \
	fi
	$(render-default-without-crd) | kubectl delete --ignore-not-found -f -

##@ Build

.PHONY: docker-build
docker-build: ## Build the manager image (needs a Docker engine).
	docker build --build-arg VERSION=$(VERSION) -t $(IMG) .

# The flags of every ko build of the manager image; .ko.yaml holds the rest (base,
# platforms, the version stamped). ko reads no labels from .ko.yaml, so the OCI labels are
# flags: the Dockerfile's, and the commit. ko splits --image-label values at commas: none
# may hold one. image-push (the release) and image-tarball (its check) both build with them.
IMAGE_SOURCE ?= https://github.com/segment-operator/segment-operator
IMAGE_REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
KO_BUILD_FLAGS = --bare --tags $(VERSION) --sbom spdx \
	--image-label org.opencontainers.image.title=segment-operator \
	--image-label 'org.opencontainers.image.description=Kubernetes operator that manages ChatBot.com user segments declaratively' \
	--image-label org.opencontainers.image.source=$(IMAGE_SOURCE) \
	--image-label org.opencontainers.image.licenses=Apache-2.0 \
	--image-label org.opencontainers.image.version=$(VERSION) \
	--image-label org.opencontainers.image.revision=$(IMAGE_REVISION)
IMAGE_TARBALL ?= dist/manager-image.tar

# hack/image serves a stand-in for the distroless base from an in-memory registry on
# 127.0.0.1, runs the ko build below against it (pushing to that registry), and checks the
# image: platforms, base, user, entrypoint, labels, `--version` (test/image says how).
.PHONY: image-tarball
image-tarball: ko ## Build the manager image with ko as a release does but against a local stand-in base, check it, and write $(IMAGE_TARBALL) (an OCI layout; no Docker, no registry).
	go run ./hack/image -version $(VERSION) -revision "$(IMAGE_REVISION)" -name $(RELEASE_REPO):$(VERSION) -out $(IMAGE_TARBALL) -- \
	  $(KO) build ./cmd $(KO_BUILD_FLAGS)

##@ Dependencies

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen into bin/.
$(CONTROLLER_GEN): $(LOCALBIN)
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Install kustomize into bin/.
$(KUSTOMIZE): $(LOCALBIN)
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))

.PHONY: kubebuilder
kubebuilder: $(KUBEBUILDER) ## Install kubebuilder (for its Helm plugin) into bin/.
$(KUBEBUILDER): $(LOCALBIN)
	$(call go-install-tool,$(KUBEBUILDER),sigs.k8s.io/kubebuilder/v4,$(KUBEBUILDER_VERSION))

.PHONY: crd-ref-docs
crd-ref-docs: $(CRD_REF_DOCS) ## Install crd-ref-docs (the API reference in docs/) into bin/.
$(CRD_REF_DOCS): $(LOCALBIN)
	$(call go-install-tool,$(CRD_REF_DOCS),github.com/elastic/crd-ref-docs,$(CRD_REF_DOCS_VERSION))

.PHONY: ko
ko: $(KO) ## Install ko (builds the manager image without Docker) into bin/.
$(KO): $(LOCALBIN)
	$(call go-install-tool,$(KO),github.com/google/ko,$(KO_VERSION))

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Install golangci-lint (make lint) into bin/.
$(GOLANGCI_LINT): $(LOCALBIN)
	$(call go-install-tool,$(GOLANGCI_LINT),github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION))

$(LOCALBIN):
	mkdir -p $(LOCALBIN)

# render-config prints config/default after running the shell command $(1) in a copy of
# config/: `kustomize edit` rewrites the kustomization it runs in, and the checkout stays as
# committed. render-default sets the manager image to $(IMG); render-default-without-crd
# leaves the CRD out.
define render-config
{ tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cp -R config "$$tmp/" && \
  (cd "$$tmp/config" && $(1)) && $(KUSTOMIZE) build "$$tmp/config/default"; }
endef
render-default = $(call render-config,cd manager && $(KUSTOMIZE) edit set image controller=$(IMG))
render-default-without-crd = $(call render-config,cd default && $(KUSTOMIZE) edit remove resource ../crd)

# go-install-tool installs package $2 at version $3 as $1-$3 and links $1 to it, so that a
# version bump reinstalls.
define go-install-tool
@[ -f "$(1)-$(3)" ] || { \
set -e; \
echo "Installing $(2)@$(3)"; \
rm -f $(1) || true; \
GOBIN=$(LOCALBIN) go install $(2)@$(3); \
mv $(1) $(1)-$(3); \
}; \
ln -sf $(notdir $(1))-$(3) $(1)
endef

##@ Helm Deployment

## Helm binary to use for deploying the chart
HELM ?= helm
## Namespace to deploy the Helm release
HELM_NAMESPACE ?= segment-operator-system
## Name of the Helm release
HELM_RELEASE ?= segment-operator
## Path to the Helm chart directory
HELM_CHART_DIR ?= charts/chart
## Additional arguments to pass to helm commands
HELM_EXTRA_ARGS ?=

.PHONY: install-helm
install-helm: ## Install the latest version of Helm.
	@command -v $(HELM) >/dev/null 2>&1 || { \
		echo "Installing Helm..." && \
		curl -fsSL https://raw.githubusercontent.com/helm/helm/main/scripts/get-helm-4 | bash; \
	}

.PHONY: helm-deploy
helm-deploy: install-helm ## Deploy manager to the K8s cluster via Helm. Specify an image with IMG.
	IMG="$(IMG)"; repo=$$IMG; tag=; \
	if [[ $$IMG != *@* && $${IMG##*/} == *:* ]]; then repo=$${IMG%:*}; tag=$${IMG##*:}; fi; \
	$(HELM) upgrade --install $(HELM_RELEASE) $(HELM_CHART_DIR) \
		--namespace $(HELM_NAMESPACE) \
		--create-namespace \
		--set manager.image.repository=$$repo \
		--set-string manager.image.tag=$$tag \
		--wait \
		--timeout 5m \
		$(HELM_EXTRA_ARGS)

.PHONY: helm-uninstall
helm-uninstall: ## Uninstall the Helm release from the K8s cluster.
	$(HELM) uninstall $(HELM_RELEASE) --namespace $(HELM_NAMESPACE)

.PHONY: helm-status
helm-status: ## Show Helm release status.
	$(HELM) status $(HELM_RELEASE) --namespace $(HELM_NAMESPACE)

.PHONY: helm-history
helm-history: ## Show Helm release history.
	$(HELM) history $(HELM_RELEASE) --namespace $(HELM_NAMESPACE)

.PHONY: helm-rollback
helm-rollback: ## Rollback to previous Helm release.
	$(HELM) rollback $(HELM_RELEASE) --namespace $(HELM_NAMESPACE)
