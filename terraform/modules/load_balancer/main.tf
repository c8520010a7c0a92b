# Global external Application Load Balancer (EXTERNAL_MANAGED): the only kind
# whose URL map routes by method. One serverless NEG and backend service per
# public function; route rules generated from shared/http/routes.py
# (routes.auto.tf.json, `python -m deploy.routes`); managed certificate;
# HTTP -> HTTPS redirect; Cloud Armor on every backend.

resource "google_compute_region_network_endpoint_group" "this" {
  for_each = var.services

  project               = var.project_id
  name                  = "${var.name}-${each.key}"
  region                = var.region
  network_endpoint_type = "SERVERLESS"

  # A 2nd-gen function is a Cloud Run service: the cloud_function block is for 1st gen.
  cloud_run {
    service = each.value
  }
}

resource "google_compute_backend_service" "this" {
  for_each = var.services

  project               = var.project_id
  name                  = "${var.name}-${each.key}"
  protocol              = "HTTPS"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  security_policy       = google_compute_security_policy.this.id

  backend {
    group = google_compute_region_network_endpoint_group.this[each.key].id
  }

  log_config {
    enable      = true
    sample_rate = var.log_sample_rate
  }
}

resource "google_compute_url_map" "https" {
  project     = var.project_id
  name        = "${var.name}-https"
  description = "Routes by method and path, as shared/http/routes.py says."
  # Unmatched requests go to a function that answers them in the gateway's error format:
  # 403 not_exposed for an SDK operation the gateway does not serve, else 405 or 404
  # (shared.http.web.unrouted, the same answer as the local router's).
  default_service = google_compute_backend_service.this[var.default_function].id

  host_rule {
    hosts        = ["*"]
    path_matcher = "gateway"
  }

  # A path matcher holds route rules or path rules, never both: route rules only.
  path_matcher {
    name            = "gateway"
    default_service = google_compute_backend_service.this[var.default_function].id

    dynamic "route_rules" {
      for_each = local.gateway_route_rules
      content {
        priority = route_rules.value.priority
        service  = google_compute_backend_service.this[route_rules.value.function].id

        match_rules {
          full_path_match     = route_rules.value.full_path_match
          path_template_match = route_rules.value.path_template_match

          header_matches {
            header_name = ":method"
            exact_match = route_rules.value.method
          }
        }
      }
    }
  }
}

resource "google_compute_url_map" "redirect" {
  project     = var.project_id
  name        = "${var.name}-redirect"
  description = "Plain HTTP answers with a redirect to HTTPS."

  default_url_redirect {
    https_redirect         = true
    redirect_response_code = "MOVED_PERMANENTLY_DEFAULT"
    strip_query            = false
  }
}

resource "google_compute_global_address" "this" {
  project    = var.project_id
  name       = "${var.name}-ip"
  ip_version = "IPV4"
}

# The name carries the domain's hash: a new domain makes a new certificate
# first, and the proxy moves to it before the old one is deleted.
resource "google_compute_managed_ssl_certificate" "this" {
  project = var.project_id
  name    = "${var.name}-${substr(sha256(var.domain), 0, 8)}"

  managed {
    domains = [var.domain]
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "google_compute_ssl_policy" "this" {
  project         = var.project_id
  name            = "${var.name}-tls"
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"
}

resource "google_compute_target_https_proxy" "this" {
  project          = var.project_id
  name             = "${var.name}-https"
  url_map          = google_compute_url_map.https.id
  ssl_certificates = [google_compute_managed_ssl_certificate.this.id]
  ssl_policy       = google_compute_ssl_policy.this.id
}

resource "google_compute_target_http_proxy" "redirect" {
  project = var.project_id
  name    = "${var.name}-redirect"
  url_map = google_compute_url_map.redirect.id
}

resource "google_compute_global_forwarding_rule" "https" {
  project               = var.project_id
  name                  = "${var.name}-https"
  ip_address            = google_compute_global_address.this.id
  ip_protocol           = "TCP"
  port_range            = "443"
  target                = google_compute_target_https_proxy.this.id
  load_balancing_scheme = "EXTERNAL_MANAGED"
}

resource "google_compute_global_forwarding_rule" "http" {
  project               = var.project_id
  name                  = "${var.name}-http"
  ip_address            = google_compute_global_address.this.id
  ip_protocol           = "TCP"
  port_range            = "80"
  target                = google_compute_target_http_proxy.redirect.id
  load_balancing_scheme = "EXTERNAL_MANAGED"
}
