package service

import (
	"context"
	"fmt"
	"os"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// TracingConfigured reports whether the environment names an OTLP endpoint
// for traces (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT);
// without one the host exports nothing and spans cost nothing.
func TracingConfigured() bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != ""
}

// startTracing installs the global TracerProvider that exports spans over
// OTLP/HTTP, configured the standard way: the endpoint, headers, protocol
// details and timeouts from OTEL_EXPORTER_OTLP_*, the sampler from
// OTEL_TRACES_SAMPLER(_ARG), the service name from OTEL_SERVICE_NAME
// (defaulting to name) and other resource attributes from
// OTEL_RESOURCE_ATTRIBUTES. It returns the function that flushes the spans
// still buffered and puts the previous provider back; with no endpoint set it
// installs nothing.
func startTracing(ctx context.Context, name string) (func(context.Context) error, error) {
	if !TracingConfigured() {
		return nil, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	// FromEnv after the default: OTEL_SERVICE_NAME wins over name.
	res, err := resource.New(ctx, resource.WithAttributes(attribute.String("service.name", name)),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	prev, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	return func(ctx context.Context) error {
		otel.SetTracerProvider(prev)
		otel.SetTextMapPropagator(prevProp)
		return tp.Shutdown(ctx) // flushes what the batcher holds
	}, nil
}
