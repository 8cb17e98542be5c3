//! The wire shapes of the API: what handlers accept and answer, camelCase, with the exact
//! timestamp formats of API.md §1.4. Domain values are converted here and only here.

mod api_keys;
mod audit;
mod credits;
mod errors;
mod organizations;
mod webhooks;
mod whoami;

pub use api_keys::{
    ApiKeyDto, ApiKeyList, CreateApiKeyBody, DeletedApiKeyDto, KilledApiKeyDto, MintedApiKeyDto,
    RotatedApiKeyDto,
};
pub use audit::{AuditEventDto, AuditList};
pub use credits::{
    AllocateBody, AllocationDto, CreditConfigView, CreditsDto, LedgerEventDto, LedgerList,
    PatchCreditConfigBody, ReservationDto, ReserveBody, SettleBody,
};
pub use errors::{ErrorBody, ErrorEnvelope, FieldErrorDto};
pub use organizations::{
    ArchivedOrganizationDto, CreateOrganizationBody, CreditConfigDto, OrganizationDto,
    OrganizationList, OrganizationWithSummaryDto, PatchOrganizationBody, SummaryDto, SuspendBody,
};
pub use webhooks::{
    CreateEndpointBody, CreatedEndpointDto, DeletedEndpointDto, DeliveryDto, DeliveryList,
    EndpointDto, EndpointList, PatchEndpointBody,
};
pub use whoami::WhoamiDto;
