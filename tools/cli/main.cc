// The orchard command line: flags -> PipelineOptions, results -> one-line messages.
// Exit codes: 0 success, 1 failure, 2 usage error.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <new>

#include "commands.h"
#include "orchard/cpu.h"
#include "orchard/pipeline.h"

namespace {

std::atomic<bool> g_cancel{false};

// The first Ctrl-C (or SIGTERM) stops the run cleanly within seconds; a second one ends the
// process at once (what was committed to the store survives either way).
void OnSignal(int) {
  if (g_cancel.exchange(true)) _exit(130);
}

// OpenBLAS chooses its kernels once, when it is loaded, from OPENBLAS_CORETYPE or its table
// of known CPUs. On a CPU newer than that table it runs older (AVX2) kernels at about half
// the speed, which the PCA accumulation would pay. Then the process starts itself again with
// the right OPENBLAS_CORETYPE, once: a coretype the user set is never replaced, and the
// restarted process sees it set.
void RestartWithBetterBlasKernels(char** argv) {
  const orchard::BlasKernel kernel = orchard::InspectBlasKernel();
  if (kernel.overridden || kernel.better.empty()) return;
  if (setenv("OPENBLAS_CORETYPE", kernel.better.c_str(), 1) != 0) return;
  execv("/proc/self/exe", argv);
  unsetenv("OPENBLAS_CORETYPE");  // exec failed: carry on with the kernels we have
}

}  // namespace

int main(int argc, char** argv) {
  RestartWithBetterBlasKernels(argv);
  CLI::App app{
      "orchard: image collection -> CNN descriptors -> exact PCA -> feature matrix.\n"
      "Typical run: orchard run --input ~/fruits/Training --output out/ --pca-variance 0.95"};
  app.set_version_flag("--version", std::string("orchard ") + ORCHARD_VERSION);
  app.require_subcommand(1);

  orchard::PipelineOptions options;
  orchard::cli::RunFlags flags;
  CLI::App* run =
      app.add_subcommand("run", "List, decode, describe with a CNN, fit PCA and write the matrix");
  orchard::cli::AddRunFlags(*run, options, flags, /*is_update=*/false);
  CLI::App* update = app.add_subcommand(
      "update",
      "Bring an earlier result up to date with the input: featurize only new or changed "
      "images, drop deleted ones, refit the exact PCA and rewrite the outputs");
  orchard::cli::AddRunFlags(*update, options, flags, /*is_update=*/true);

  CLI::App* models =
      app.add_subcommand("models", "List the model presets and where they come from");
  std::string ls_location, ls_endpoint;
  CLI::App* ls = app.add_subcommand("ls", "List what a run would process, with counts per label");
  ls->add_option("LOCATION", ls_location, "Folder or s3://bucket/prefix")->required();
  ls->add_option("--s3-endpoint", ls_endpoint,
                 "S3-compatible endpoint (default: $AWS_ENDPOINT_URL, else AWS)");
  std::string inspect_dir;
  CLI::App* inspect = app.add_subcommand("inspect", "Summarise the result folder of a run");
  inspect->add_option("OUT", inspect_dir, "Output folder of 'orchard run'")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "orchard: %s (see orchard --help)\n", e.what());
    return 2;
  }

  // The core reports errors as Status; an exception reaching here is a bug or an allocation
  // that failed outside a guarded place: one line and exit 1, not an abort and a core dump.
  try {
    if (*models) return orchard::cli::ListModelsCommand();
    if (*ls) return orchard::cli::LsCommand(ls_location, ls_endpoint);
    if (*inspect) return orchard::cli::InspectCommand(inspect_dir);

    std::signal(SIGINT, OnSignal);
    std::signal(SIGTERM, OnSignal);
    options.cancel = &g_cancel;
    if (*update) options.mode = orchard::OutputMode::kUpdate;
    return orchard::cli::RunCommand(options, flags);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "orchard: out of memory\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "orchard: internal error: %s\n", e.what());
  }
  return 1;
}
