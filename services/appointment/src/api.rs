//! gRPC adapter for the appointment service.

use tonic::{Request, Response, Status};
use zhengna_platform::identity;
use zhengna_proto::appointment::v1 as pb;

use crate::booking::{self, Bookings};

pub struct AppointmentApi {
    bookings: Bookings,
}

impl AppointmentApi {
    pub fn new(bookings: Bookings) -> Self {
        Self { bookings }
    }
}

#[tonic::async_trait]
impl pb::appointment_service_server::AppointmentService for AppointmentApi {
    async fn book_appointment(
        &self,
        request: Request<pb::BookAppointmentRequest>,
    ) -> Result<Response<pb::BookAppointmentResponse>, Status> {
        let caller = identity::caller(&request)?;
        let tp = caller.taxpayer()?;
        let valid = booking::validate(request.get_ref(), tp, chrono::Utc::now())?;
        let row = self.bookings.book(tp, valid).await?;
        Ok(Response::new(pb::BookAppointmentResponse { appointment: Some(row.to_proto()) }))
    }
}

/// The bureau side (invitations, start, complete) and slot capacity come with the
/// appointments issue; until then every method answers UNIMPLEMENTED naming it.
pub struct Later;

#[tonic::async_trait]
impl pb::appointment_desk_service_server::AppointmentDeskService for Later {}
#[tonic::async_trait]
impl pb::appointment_admin_service_server::AppointmentAdminService for Later {}
