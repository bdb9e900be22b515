//! A whole onboarding through HTTP, against the real PostgreSQL and Redis:
//! anonymous start, answers, sign-in, merge, completion, status.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::api::{Api, Auth, valid_answer};
use crate::support::{spawn_app, token};

/// Runs the whole journey against `api`; `user` must be unique per run.
pub async fn whole_onboarding(api: &Api, user: &str, slug: &str) {
    // An anonymous visitor starts a session and answers the first steps.
    let session = api.start_session().await;
    let anonymous = Auth::session(&session);
    let status = api.status(&anonymous).await;
    assert_eq!(status["state"], "not_started");
    assert_eq!(status["authenticated"], false);

    let response = api
        .put_step("profile", &anonymous, valid_answer("profile"), true, None)
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"1\"");

    let mut organization = valid_answer("organization");
    organization["slug"] = json!(slug);
    let draft = json!({ "name": "Acme" });
    let response = api
        .put_step("organization", &anonymous, draft, false, None)
        .await;
    assert_eq!(response.status(), 200);
    let response = api
        .put_step(
            "organization",
            &anonymous,
            organization.clone(),
            true,
            Some(1),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());

    let status = api.status(&anonymous).await;
    assert_eq!(status["state"], "in_progress");
    assert_eq!(status["nextStep"], "goals");

    // Sign-in: the drafts move to the user.
    let signed_in = Auth::token(&token(user, None));
    let response = api
        .post(
            "/api/onboarding/session/merge",
            &signed_in.clone().with_session(&session),
            json!({}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let merged: Value = response.json().await.unwrap();
    assert_eq!(
        merged["merged"][0]["fromSession"],
        json!(["organization", "profile"])
    );

    let status = api.status(&signed_in).await;
    assert_eq!(status["authenticated"], true);
    assert_eq!(status["completedSteps"], json!(["profile", "organization"]));
    assert_eq!(status["nextStep"], "goals");

    // The read of a step carries its version.
    let response = api
        .request(
            Method::GET,
            "/api/onboarding/steps/organization",
            &signed_in,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"2\"");
    let step: Value = response.json().await.unwrap();
    assert_eq!(step["answers"]["slug"], slug);

    for step in ["goals", "team", "preferences"] {
        let response = api
            .put_step(step, &signed_in, valid_answer(step), true, None)
            .await;
        assert_eq!(
            response.status(),
            200,
            "{step}: {}",
            response.text().await.unwrap()
        );
    }

    let response = api
        .post("/api/onboarding/complete", &signed_in, json!({}))
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let completed: Value = response.json().await.unwrap();
    assert_eq!(completed["status"]["state"], "completed");
    assert_eq!(completed["invitations"], 1);
    let organization_id = completed["organizationId"].clone();
    assert!(organization_id.is_string());

    let status = api.status(&signed_in).await;
    assert_eq!(status["state"], "completed");
    assert_eq!(status["redirectTo"], "/");

    // Completing again is harmless: same organization, nothing new.
    let response = api
        .post("/api/onboarding/complete", &signed_in, json!({}))
        .await;
    assert_eq!(response.status(), 200);
    let again: Value = response.json().await.unwrap();
    assert_eq!(again["organizationId"], organization_id);
    assert_eq!(again["invitations"], 0);
}

#[tokio::test]
async fn a_visitor_onboards_anonymously_signs_in_and_completes() {
    let app = spawn_app().await;
    let api = Api::at(&app.address);
    whole_onboarding(&api, "user_journey", "acme-journey").await;

    // The rows landed where the completion transform puts them.
    let admin = crate::support::connect(&app.db.admin_url()).await;
    let row = admin
        .query_one(
            "select o.slug, m.role, (select count(*) from onboarding.invitations i where i.organization_id = o.id),
                    (select full_name from onboarding.user_profiles where user_id = 'user_journey')
             from onboarding.organizations o join onboarding.memberships m on m.organization_id = o.id
             where m.user_id = 'user_journey'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "acme-journey");
    assert_eq!(row.get::<_, &str>(1), "owner");
    assert_eq!(row.get::<_, i64>(2), 1);
    assert_eq!(row.get::<_, &str>(3), "Ada Lovelace");
}
